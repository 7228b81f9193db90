"""The issued report's PDF signed in Decree 30/2020's order, for `approvals.consolidated.issuing`:
the director who approved it signs first (`director_signed`); the register then gives its number
and date, which are written in, and the issuing agency signs last (`agency_sealed`). Each step
returns what the audit log records of it: who signed, the certificate's fingerprint and the
digest of the file as signed.

pyHanko blocks (a token, a timestamp authority, revocation services): the work runs in a thread."""

from __future__ import annotations

import asyncio
import enum
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from asn1crypto import x509 as asn1_x509
from pyhanko.sign.signers import Signer

from approvals.signing.backends import RemoteSigner, SignerConfig, open_signer
from approvals.signing.errors import SigningRefused
from approvals.signing.interrupted import PendingRemoteSignature, begin_remote_signature, finish_remote_signature
from approvals.signing.register import fill_number_and_date
from approvals.signing.remote import RemoteSigningClient, remote_signer
from approvals.signing.signatures import (
    common_name,
    pdf_signer,
    prepare_director,
    seal_as_agency,
    sign_as_director,
    timestamp_authority,
)
from approvals.signing.signers import Signers
from approvals.signing.verification import document_digest

if TYPE_CHECKING:  # a type only: approvals.consolidated imports this package, not the reverse
    from approvals.consolidated.pdf_file import PdfLayout


class SignedAs(str, enum.Enum):
    director = "director"  # the leader's signature (Appendix I, II.7)
    agency = "agency"  # the issuing body's signature, shown as its seal (II.8)


@dataclass(frozen=True)
class SignatureMade:
    signed_as: SignedAs
    by: str  # the official's or the agency's id in the plan
    certificate_name: str  # the certificate's common name
    fingerprint: str  # SHA-256 of the signer's certificate, hex
    digest: str  # SHA-256 of the PDF as this signature left it, hex
    test: bool  # made with a test certificate (development, the demo)

    def audit(self) -> dict[str, Any]:
        return {**asdict(self), "signed_as": self.signed_as.value}


async def director_signed(
    pdf: bytes, layout: PdfLayout, *, signers: Signers, official_id: str
) -> tuple[bytes, SignatureMade]:
    """The approved report (its number and date blank) signed by the director who approved it."""
    config = signers.director(official_id)
    image = _image(config, f"the signature of {official_id}")

    def sign() -> tuple[bytes, SignatureMade]:
        with open_signer(config, signers.environ()) as signer:
            signed = sign_as_director(
                pdf, signer, layout=layout, image=image, timestamper=_timestamper(signers), trust_roots=_roots(signers)
            )
            return signed, _made(SignedAs.director, official_id, _certificate(signer), signed, test=signers.test)

    return await asyncio.to_thread(sign)


def remote_director(signers: Signers, official_id: str) -> RemoteSigner | None:
    """The director's remote signer, when they sign on the phone (else they sign at once)."""
    config = signers.director(official_id)
    return config if isinstance(config, RemoteSigner) else None


async def director_asked_remotely(
    pdf: bytes, layout: PdfLayout, *, signers: Signers, official_id: str, client: RemoteSigningClient
) -> PendingRemoteSignature:
    """The approved report (its number and date blank) made ready for its director's signature at
    the remote signing provider: the certificate the provider holds for them, the signature's
    revision and appearance as `director_signed` makes them, and what the phone signs
    (`PendingRemoteSignature.to_be_signed`). Nothing is sent to the phone here."""
    config = remote_director(signers, official_id)
    if config is None:
        raise SigningRefused(f"{official_id} does not sign remotely")
    image = _image(config, f"the signature of {official_id}")
    remote = await client.certificate(config.user_id, serial_number=config.serial_number)
    prepared = await asyncio.to_thread(prepare_director, pdf, layout=layout, image=image)
    made, text = pdf_signer(
        prepared,
        remote_signer(remote.certificate, remote.chain),
        timestamper=_timestamper(signers),
        trust_roots=_roots(signers),
    )
    return await begin_remote_signature(
        prepared.writer, made, remote.certificate, remote.chain, appearance_text_params=text
    )


async def director_signed_remotely(
    pending: PendingRemoteSignature, signature: bytes, *, signers: Signers, official_id: str
) -> tuple[bytes, SignatureMade]:
    """The report signed by its director with the signature value the provider returned: refused
    (SigningRefused) if it is not their certificate's signature over this very document."""
    signed = await finish_remote_signature(
        pending, signature, timestamper=_timestamper(signers), trust_roots=_roots(signers)
    )
    certificate = asn1_x509.Certificate.load(pending.certificate)
    return signed, _made(SignedAs.director, official_id, certificate, signed, test=signers.test)


async def agency_sealed(
    pdf: bytes, layout: PdfLayout, *, signers: Signers, agency_id: str, number: str, place_date: str
) -> tuple[bytes, SignatureMade]:
    """The director's signed report given its number and date by the register, then signed by
    its issuing agency, last."""
    config = signers.agency(agency_id)
    seal = _image(config, f"the seal of {agency_id}")

    def sign() -> tuple[bytes, SignatureMade]:
        numbered = fill_number_and_date(pdf, number=number, place_date=place_date)
        with open_signer(config, signers.environ()) as signer:
            signed = seal_as_agency(
                numbered,
                signer,
                layout=layout,
                seal=seal,
                timestamper=_timestamper(signers),
                trust_roots=_roots(signers),
            )
            return signed, _made(SignedAs.agency, agency_id, _certificate(signer), signed, test=signers.test)

    return await asyncio.to_thread(sign)


def _image(config: SignerConfig, what: str) -> bytes:
    if config.image is None:
        raise SigningRefused(f"no image is configured for {what}: Decree 30/2020 shows it on the document")
    try:
        return config.image.read_bytes()
    except OSError as error:
        raise SigningRefused(f"{what} cannot be read from {config.image}: {error.strerror or error}") from error


def _timestamper(signers: Signers):  # type: ignore[no-untyped-def]
    url = signers.timestamp_url()
    return timestamp_authority(url) if url else None


def _roots(signers: Signers) -> list[bytes] | None:
    return signers.trust_roots() or None


def _certificate(signer: Signer) -> asn1_x509.Certificate:
    certificate = signer.signing_cert
    assert certificate is not None  # open_signer refuses a signer without one
    return certificate


def _made(signed_as: SignedAs, by: str, certificate: asn1_x509.Certificate, pdf: bytes, *, test: bool) -> SignatureMade:
    return SignatureMade(
        signed_as=signed_as,
        by=by,
        certificate_name=common_name(certificate),
        fingerprint=certificate.sha256.hex(),
        digest=document_digest(pdf),
        test=test,
    )
