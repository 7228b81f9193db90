"""A PDF signature made in two halves, for a key held elsewhere (pyHanko's "interrupted signing").

`begin_remote_signature` prepares the document (the signature's field, its appearance, the
placeholder for the signature container), digests its /ByteRange, and formats the CMS signed
attributes; what the key holder must sign is the digest of those attributes
(`PendingRemoteSignature.to_be_signed`). The state is plain data (`to_json` / `from_json`), so
the flow run can wait suspended, holding no process, and any process can finish it:
`finish_remote_signature` checks the document and the returned signature, packages the CMS
around the signature and writes it into the placeholder.

pyHanko's API used (0.38, read in its sources): `PdfSigner.init_signing_session`, then the
session's `perform_presign_validation`, `estimate_signature_container_size`,
`prepare_tbs_document` and `PdfTBSDocument.digest_tbs_document` (the steps
`PdfSigner.async_digest_doc_for_signing` runs, kept apart here for the session's signing time,
which the signed attributes need); `Signer.signed_attrs`; and to finish, `ExternalSigner` with
the returned value, `Signer.async_sign_prescribed_attributes` and
`PdfTBSDocument.async_finish_signing` over a `PreparedByteRangeDigest`.

The caller builds the `PdfSigner` (field, appearance, PAdES metadata, timestamper): pass one whose
signer is `remote_signer(certificate, chain)`, or a factory taking that signer. A timestamper's
token covers the signature value, so the same timestamper is given again to finish. pyHanko's
post-signing steps hold live objects that do not survive a restart, so finishing adds the B-LT
validation data itself when given trust roots: the chain's OCSP responses and CRLs, fetched
then, in a revision of their own right after the signature (pyHanko's `async_add_validation_info`;
a later form filling and signature keep it intact). No LTA document timestamp is added.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from asn1crypto import algos, cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as pyca_x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers import ExternalSigner, PdfSigner
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.validation.dss import async_add_validation_info
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.sig_validate import DefaultSignatureValidator

from approvals.signing.errors import SigningRefused

PdfSignerOrFactory = PdfSigner | Callable[[ExternalSigner], PdfSigner]

STATE_VERSION = 1
DIGEST = "sha256"  # what SmartCA signs: `data_to_be_signed` is a SHA-256 digest in hex (remote.py)


def _asn1(certificate: pyca_x509.Certificate) -> Any:
    """pyHanko's (asn1crypto's) certificate for cryptography's."""
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


def _store(certificates: Sequence[Any]) -> SimpleCertificateStore:
    store = SimpleCertificateStore()
    for certificate in certificates:
        store.register(certificate)
    return store


def _who(certificate: pyca_x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()


def check_validity(certificate: pyca_x509.Certificate, now: dt.datetime | None = None) -> None:
    """SigningRefused unless `now` (default: the wall clock) lies in the certificate's validity."""
    now = now or dt.datetime.now(dt.UTC)
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    name = _who(certificate)
    if now > not_after:
        raise SigningRefused(f"the certificate of {name} expired on {not_after:%Y-%m-%d %H:%M} UTC: it cannot sign")
    if now < not_before:
        raise SigningRefused(f"the certificate of {name} is valid only from {not_before:%Y-%m-%d %H:%M} UTC")


def remote_signer(certificate: pyca_x509.Certificate, chain: Sequence[pyca_x509.Certificate] = ()) -> ExternalSigner:
    """The pyHanko signer to build a `PdfSigner` on: the certificate and its chain, and a
    placeholder value as long as the key's largest signature (to size the container)."""
    cert = _asn1(certificate)
    placeholder = 2 * cert.public_key.byte_size + 16  # RSA's, or an ECDSA signature's DER
    return ExternalSigner(
        signing_cert=cert, cert_registry=_store([cert, *map(_asn1, chain)]), signature_value=placeholder
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class PendingRemoteSignature:
    """A document waiting for its signature value, as plain data that survives a restart."""

    document: bytes  # the PDF as it will be signed, with the container's placeholder
    document_digest: bytes  # over its /ByteRange: everything but the placeholder
    reserved_start: int  # the placeholder's place in `document` ('<' to '>')
    reserved_end: int
    md_algorithm: str
    signed_attributes: bytes  # DER of the CMS signed attributes (they carry `document_digest`)
    mechanism: bytes  # DER of the signature algorithm the key holder uses
    certificate: bytes  # DER of the signer's certificate
    chain: tuple[bytes, ...]  # DER of the certificates above it
    timestamped: bool  # begun with a timestamper: finish needs one too

    @property
    def to_be_signed(self) -> bytes:
        """What the key holder signs: the digest of the DER-encoded signed attributes."""
        return hashlib.new(self.md_algorithm, self.signed_attributes).digest()

    def signer_certificate(self) -> pyca_x509.Certificate:
        return pyca_x509.load_der_x509_certificate(self.certificate)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "document": _b64(self.document),
            "document_digest": self.document_digest.hex(),
            "reserved_start": self.reserved_start,
            "reserved_end": self.reserved_end,
            "md_algorithm": self.md_algorithm,
            "signed_attributes": _b64(self.signed_attributes),
            "mechanism": _b64(self.mechanism),
            "certificate": _b64(self.certificate),
            "chain": [_b64(der) for der in self.chain],
            "timestamped": self.timestamped,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PendingRemoteSignature:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"a pending remote signature of version {data.get('version')!r}, not {STATE_VERSION}")
        try:
            decode = base64.b64decode
            return cls(
                document=decode(data["document"], validate=True),
                document_digest=bytes.fromhex(data["document_digest"]),
                reserved_start=int(data["reserved_start"]),
                reserved_end=int(data["reserved_end"]),
                md_algorithm=str(data["md_algorithm"]),
                signed_attributes=decode(data["signed_attributes"], validate=True),
                mechanism=decode(data["mechanism"], validate=True),
                certificate=decode(data["certificate"], validate=True),
                chain=tuple(decode(der, validate=True) for der in data["chain"]),
                timestamped=bool(data["timestamped"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a pending remote signature: {error!r}") from error


async def begin_remote_signature(
    pdf: bytes | IncrementalPdfFileWriter,
    pdf_signer: PdfSignerOrFactory,
    certificate: pyca_x509.Certificate,
    chain: Sequence[pyca_x509.Certificate] = (),
    *,
    now: dt.datetime | None = None,
    appearance_text_params: dict[str, str] | None = None,
) -> PendingRemoteSignature:
    """Prepare `pdf` (its bytes, or a revision already begun, as `signatures.prepare_director`
    makes) for a signature by `certificate`'s key, held elsewhere. SigningRefused if the
    certificate is not valid `now`, before anything is prepared or sent."""
    check_validity(certificate, now)
    cert = _asn1(certificate)
    if not isinstance(pdf_signer, PdfSigner):
        pdf_signer = pdf_signer(remote_signer(certificate, chain))
    signer = pdf_signer.signer
    if signer.signing_cert is None or signer.signing_cert.dump() != cert.dump():
        raise ValueError("the PdfSigner's signer must hold the certificate being signed with (remote_signer)")

    writer = pdf if isinstance(pdf, IncrementalPdfFileWriter) else IncrementalPdfFileWriter(BytesIO(pdf))
    session = pdf_signer.init_signing_session(writer)
    if session.md_algorithm != DIGEST:
        raise ValueError(f"remote signing providers sign {DIGEST} digests, not {session.md_algorithm}")
    validation_info = await session.perform_presign_validation(writer)
    reserved = await session.estimate_signature_container_size(
        validation_info, tight=pdf_signer.signature_meta.tight_size_estimates
    )
    tbs = session.prepare_tbs_document(
        validation_info=validation_info, bytes_reserved=reserved, appearance_text_params=appearance_text_params
    )
    prepared, output = tbs.digest_tbs_document()
    attributes = PdfCMSSignedAttributes(
        signing_time=session.system_time,
        adobe_revinfo_attr=None if validation_info is None else validation_info.adobe_revinfo_attr,
        cades_signed_attrs=pdf_signer.signature_meta.cades_signed_attr_spec,
    )  # as PdfSigner.async_sign_pdf passes them
    signed_attrs = await signer.signed_attrs(
        prepared.document_digest,
        tbs.md_algorithm,
        attr_settings=attributes,
        use_pades=tbs.use_pades,
        timestamper=tbs.timestamper,
    )
    output.seek(0)
    return PendingRemoteSignature(
        document=output.read(),
        document_digest=prepared.document_digest,
        reserved_start=prepared.reserved_region_start,
        reserved_end=prepared.reserved_region_end,
        md_algorithm=tbs.md_algorithm,
        signed_attributes=signed_attrs.dump(),
        mechanism=signer.get_signature_mechanism_for_digest(tbs.md_algorithm).dump(),
        certificate=cert.dump(),
        chain=tuple(c.public_bytes(Encoding.DER) for c in chain),
        timestamped=tbs.timestamper is not None,
    )


def _check_document(pending: PendingRemoteSignature) -> None:
    """The document and its signed attributes are still the ones begun: a byte changed since
    would make a signature that never validates."""
    document, start, end = pending.document, pending.reserved_start, pending.reserved_end
    if not 0 < start < end <= len(document):
        raise SigningRefused("the pending signature's document has lost its signature placeholder")
    digest = hashlib.new(pending.md_algorithm, document[:start])
    digest.update(document[end:])
    attributes = cms.CMSAttributes.load(pending.signed_attributes)
    message_digests = [a["values"][0].native for a in attributes if a["type"].native == "message_digest"]
    if digest.digest() != pending.document_digest or message_digests != [pending.document_digest]:
        raise SigningRefused("the document changed after its signature was requested: request a new signature")


async def finish_remote_signature(
    pending: PendingRemoteSignature,
    signature: bytes,
    *,
    timestamper: TimeStamper | None = None,
    now: dt.datetime | None = None,
    trust_roots: Sequence[bytes] | None = None,
) -> bytes:
    """The signed PDF: `signature` (the raw value the key holder returned for
    `pending.to_be_signed`) packaged as the document's CMS signature. SigningRefused if the
    document changed since it was begun, if the value is not the certificate's signature over
    these attributes, or if the certificate is no longer valid."""
    if pending.timestamped and timestamper is None:
        raise ValueError("this signature was begun with a timestamper: give finish_remote_signature the same")
    _check_document(pending)
    check_validity(pending.signer_certificate(), now)
    cert = asn1_x509.Certificate.load(pending.certificate)
    mechanism = algos.SignedDigestAlgorithm.load(pending.mechanism)
    try:
        DefaultSignatureValidator().validate_signature(signature, pending.signed_attributes, cert.public_key, mechanism)
    except InvalidSignature as error:
        raise SigningRefused(
            f"the signature returned is not {_who(pending.signer_certificate())}'s over this document: not embedded"
        ) from error
    signer = ExternalSigner(
        signing_cert=cert,
        cert_registry=_store([cert, *map(asn1_x509.Certificate.load, pending.chain)]),
        signature_value=signature,
        signature_mechanism=mechanism,
    )
    signed_cms = await signer.async_sign_prescribed_attributes(
        pending.md_algorithm, cms.CMSAttributes.load(pending.signed_attributes), timestamper=timestamper
    )
    output = BytesIO(pending.document)
    prepared = PreparedByteRangeDigest(pending.document_digest, pending.reserved_start, pending.reserved_end)
    await PdfTBSDocument.async_finish_signing(output, prepared, signed_cms)
    if not trust_roots:
        return output.getvalue()
    return await with_validation_info(output.getvalue(), trust_roots)


async def with_validation_info(pdf: bytes, trust_roots: Sequence[bytes]) -> bytes:
    """The PDF with its last signature's chain revocation information (OCSP, CRLs) in the
    document security store, fetched now where it can be (PAdES-B-LT); as it was where none can.
    SigningRefused if the signer's certificate does not chain to the trust roots."""
    context = ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(root) for root in trust_roots],
        allow_fetching=True,
        revocation_mode="soft-fail",  # embed what can be fetched; a revoked certificate still fails
    )
    last = PdfFileReader(BytesIO(pdf)).embedded_signatures[-1]
    try:
        output = await async_add_validation_info(last, context, add_vri_entry=False)
    except (PathBuildingError, PathValidationError) as error:
        raise SigningRefused(f"the signer's certificate does not chain to the trust roots: {error}") from error
    return bytes(output.getvalue())
