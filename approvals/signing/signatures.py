"""The report's two signatures, in the order Decree 30/2020 sets (Art. 13-15; Appendix I, II.7
and II.8): the director signs the approved report (`sign_as_director`), the register gives it
its number and date (`register.fill_number_and_date`), and the issuing agency signs last, its
seal as the signature's image (`seal_as_agency`).

Each is a PAdES signature made with pyHanko (`SigSeedSubFilter.PADES`), added as a new revision
that covers the whole document as it then stood, with an RFC 3161 timestamp when a timestamp
authority is given (PAdES-B-T), and with the chain's revocation information (OCSP, CRLs) in the
document's security store when trust roots are given and the information can be fetched
(PAdES-B-LT). A certificate expired or not yet valid is refused before anything is signed.

`prepare_director` and `prepare_agency` make each signature ready (its revision, field and
appearance) and `pdf_signer` gives pyHanko's signer for it: the signing functions use them at
once, and a remote signer can use them for pyHanko's interrupted signing.

These calls block (pyHanko runs its own event loop, and may call the timestamp authority and
the revocation services): call them off the event loop (`asyncio.to_thread`)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper
from pyhanko.stamp import BaseStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError

from approvals.signing.appearance import (
    director_box,
    director_style,
    png,
    seal_box,
    seal_diameter,
    seal_style,
)
from approvals.signing.errors import SignerUnavailable, SigningRefused
from approvals.signing.form import AGENCY, DIRECTOR, NUMBER, PLACE_DATE, READABLE, fields_of, is_signed, rect_of
from approvals.signing.form import writer_for as _writer_for
from approvals.signing.register import add_entry_fields

if TYPE_CHECKING:  # a type only: approvals.consolidated imports this package, not the reverse
    from approvals.consolidated.pdf_file import PdfLayout

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
TSA_TIMEOUT = 10.0  # seconds for the timestamp authority to answer, each of connecting and reading
REASONS = {DIRECTOR: "Ký ban hành văn bản", AGENCY: "Ký số của cơ quan, tổ chức ban hành văn bản"}


def timestamp_authority(url: str, *, timeout: float = TSA_TIMEOUT) -> TimeStamper:
    """The RFC 3161 timestamp authority at `url` (in production the one the agency's
    certification authority publishes), given up on after `timeout` seconds."""
    return RequestsHTTPTimeStamper(url, timeout=timeout)


@dataclass(frozen=True)
class Prepared:
    """A signature made ready: the new revision's writer (with what goes in before the signature),
    the signature's field and its appearance. The PKCS#12 and PKCS#11 signers sign it at once
    (`sign_as_director`, `seal_as_agency`); a remote signer, confirmed on the phone, signs the
    same through pyHanko's interrupted signing (`pdf_signer`, then its digest)."""

    writer: IncrementalPdfFileWriter
    field: fields.SigFieldSpec
    style: BaseStampStyle


def prepare_director(pdf: bytes, *, layout: PdfLayout, image: bytes) -> Prepared:
    """The director's signature on the approved report, from
    `pdf_with_layout(awaiting_number(doc), number_and_date_as_fields=True)` and its layout: the
    director's signature image (a blue PNG on a transparent background) centred between the
    position title and the name; its revision adds the register's fields, so that the number and
    date can be written after this signature without breaking it."""
    signature = png(image, what="signature")
    writer = _writer_for(pdf)
    add_entry_fields(writer, layout)
    space = layout.signature
    box = director_box((space.x1, space.y1, space.x2, space.y2), signature)
    field = fields.SigFieldSpec(DIRECTOR, on_page=space.page, box=box, readable_field_name=READABLE[DIRECTOR])
    return Prepared(writer, field, director_style(signature, box))


def prepare_agency(pdf: bytes, *, layout: PdfLayout, seal: bytes, seal_mm: float | None = None) -> Prepared:
    """The issuing agency's signature on the numbered report, last: the red seal (a PNG on a
    transparent background) at its real size (`seal_mm` across, else as the PNG's resolution
    tells, else 38 mm), over the left third of the director's signature image. The signature
    locks the number and the date: changing either afterwards breaks it."""
    image = png(seal, what="seal")
    writer = _writer_for(pdf)
    found = fields_of(writer.root)
    if not is_signed(found.get(DIRECTOR)):
        raise SigningRefused("the director has not signed this PDF: the agency signs after the director")
    if is_signed(found.get(AGENCY)):
        raise SigningRefused("the agency has signed this PDF already")
    if not _numbered(writer):
        raise SigningRefused("this PDF has no number and date yet: the register gives them before the agency signs")
    field = fields.SigFieldSpec(
        AGENCY,
        on_page=layout.signature.page,
        box=seal_box(rect_of(found[DIRECTOR]), seal_diameter(image, seal_mm)),
        readable_field_name=READABLE[AGENCY],
        field_mdp_spec=fields.FieldMDPSpec(fields.FieldMDPAction.INCLUDE, fields=[NUMBER, PLACE_DATE]),
    )
    return Prepared(writer, field, seal_style(image))


def sign_as_director(
    pdf: bytes,
    signer: signers.Signer,
    *,
    layout: PdfLayout,
    image: bytes,
    timestamper: TimeStamper | None = None,
    trust_roots: Sequence[bytes] | None = None,
) -> bytes:
    """The approved report signed by its director (`prepare_director`)."""
    ensure_off_event_loop("sign_as_director")
    ensure_in_force(signer)
    prepared = prepare_director(pdf, layout=layout, image=image)
    return _sign(prepared, signer, timestamper=timestamper, trust_roots=trust_roots)


def seal_as_agency(
    pdf: bytes,
    signer: signers.Signer,
    *,
    layout: PdfLayout,
    seal: bytes,
    timestamper: TimeStamper | None = None,
    trust_roots: Sequence[bytes] | None = None,
    seal_mm: float | None = None,
) -> bytes:
    """The numbered report signed by its issuing agency, last (`prepare_agency`)."""
    ensure_off_event_loop("seal_as_agency")
    ensure_in_force(signer)
    prepared = prepare_agency(pdf, layout=layout, seal=seal, seal_mm=seal_mm)
    return _sign(prepared, signer, timestamper=timestamper, trust_roots=trust_roots)


def ensure_off_event_loop(what: str) -> None:
    """pyHanko's calls run an event loop of their own, which cannot start inside a running one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # none running here
    raise RuntimeError(f"{what} blocks: call it off the event loop (asyncio.to_thread)")


def ensure_in_force(signer: signers.Signer, *, now: dt.datetime | None = None) -> None:
    """Refuses a signer whose certificate is expired or not yet valid, naming its dates."""
    certificate = signer.signing_cert
    if certificate is None:
        raise SigningRefused("the signer has no certificate")
    now = now or dt.datetime.now(dt.UTC)
    start, end = certificate.not_valid_before, certificate.not_valid_after
    name = common_name(certificate)
    dates = f"valid from {_shown(start)} to {_shown(end)}"
    if now < start:
        raise SigningRefused(f"the certificate of {name} is not valid yet: it is {dates}")
    if now > end:
        raise SigningRefused(f"the certificate of {name} has expired: it was {dates}")


def common_name(certificate: asn1_x509.Certificate) -> str:
    subject = certificate.subject.native
    return str(subject.get("common_name") or certificate.subject.human_friendly)


def _shown(moment: dt.datetime) -> str:
    return moment.astimezone(VIETNAM).isoformat(timespec="seconds")


def _numbered(writer: IncrementalPdfFileWriter) -> bool:
    """Whether the register filled the number and the date after the director signed: their
    values now differ from those in the revision the director signed."""
    reader = writer.prev
    director = next((s for s in reader.embedded_signatures if s.field_name == DIRECTOR), None)
    if director is None:
        return False
    signed = reader.get_historical_resolver(director.signed_revision)
    before = fields_of(signed.root)
    now = fields_of(reader.root)
    return all(
        name in now and name in before and str(now[name].get("/V")) != str(before[name].get("/V"))
        for name in (NUMBER, PLACE_DATE)
    )


def pdf_signer(
    prepared: Prepared,
    signer: signers.Signer,
    *,
    timestamper: TimeStamper | None = None,
    trust_roots: Sequence[bytes] | None = None,
) -> tuple[signers.PdfSigner, dict[str, str]]:
    """pyHanko's signer for a prepared signature, and the texts its appearance shows: PAdES,
    SHA-256, timestamped when a timestamper is given, and with the chain's revocation information
    (fetched when it can be) when trust roots are given."""
    context = None
    if trust_roots:
        context = ValidationContext(
            trust_roots=[asn1_x509.Certificate.load(root) for root in trust_roots],
            allow_fetching=True,
            revocation_mode="soft-fail",  # embed what can be fetched; a revoked certificate still fails
        )
    name = prepared.field.sig_field_name
    metadata = signers.PdfSignatureMetadata(
        field_name=name,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        reason=REASONS[name],
        embed_validation_info=context is not None,
        validation_context=context,
        # The revocation information in the signature's own revision (PAdES-B-LT in one revision):
        # no revision follows the agency's signature, which pyHanko 0.38 would misjudge as a change
        # to the fields it locks (see verification.DIFF_POLICY).
        dss_settings=DSSContentSettings(placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE, include_vri=False),
    )
    certificate = signer.signing_cert
    text = {
        "name": common_name(certificate) if certificate is not None else "",
        "when": _shown(dt.datetime.now(dt.UTC)),
    }
    made = signers.PdfSigner(
        metadata, signer, timestamper=timestamper, stamp_style=prepared.style, new_field_spec=prepared.field
    )
    return made, text


def _sign(
    prepared: Prepared,
    signer: signers.Signer,
    *,
    timestamper: TimeStamper | None,
    trust_roots: Sequence[bytes] | None,
) -> bytes:
    made, text = pdf_signer(prepared, signer, timestamper=timestamper, trust_roots=trust_roots)
    try:
        out = made.sign_pdf(prepared.writer, appearance_text_params=text)
    except TimestampRequestError as error:
        where = getattr(timestamper, "url", "the timestamp authority")
        raise SignerUnavailable(f"the timestamp authority at {where} did not answer: {error}") from error
    except (PathBuildingError, PathValidationError) as error:
        raise SigningRefused(f"the signer's certificate does not chain to the trust roots: {error}") from error
    except SigningError as error:
        raise SigningRefused(f"pyHanko refused to sign: {error}") from error
    return bytes(out.getvalue())
