"""The report's two signatures, in the order Decree 30/2020 sets (Art. 13-15; Appendix I, II.7
and II.8): the director signs the approved report (`sign_as_director`), the register gives it
its number and date (`register.fill_number_and_date`), and the issuing agency signs last, its
seal as the signature's image (`seal_as_agency`).

Each is a PAdES signature made with pyHanko (`SigSeedSubFilter.PADES`), added as a new revision
that covers the whole document as it then stood, with an RFC 3161 timestamp when a timestamp
authority is given (PAdES-B-T), and with the chain's revocation information (OCSP, CRLs) in the
document's security store when trust roots are given and the information can be fetched
(PAdES-B-LT). A certificate expired or not yet valid is refused before anything is signed.

These calls block (pyHanko runs its own event loop, and may call the timestamp authority and
the revocation services): call them off the event loop (`asyncio.to_thread`)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
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


def sign_as_director(
    pdf: bytes,
    signer: signers.Signer,
    *,
    layout: PdfLayout,
    image: bytes,
    timestamper: TimeStamper | None = None,
    trust_roots: Sequence[bytes] | None = None,
) -> bytes:
    """The approved report signed by its director: the PDF from
    `pdf_with_layout(awaiting_number(doc), number_and_date_as_fields=True)` and its layout, the
    director's signature image (a blue PNG on a transparent background) centred between the
    position title and the name. The same revision adds the register's fields, so that the
    number and date can be written after this signature without breaking it."""
    ensure_off_event_loop("sign_as_director")
    signature = png(image, what="signature")
    ensure_in_force(signer)
    writer = _writer_for(pdf)
    add_entry_fields(writer, layout)
    space = layout.signature
    box = director_box((space.x1, space.y1, space.x2, space.y2), signature)
    spec = fields.SigFieldSpec(DIRECTOR, on_page=space.page, box=box, readable_field_name=READABLE[DIRECTOR])
    style = director_style(signature, box)
    return _sign(writer, signer, spec, style, timestamper=timestamper, trust_roots=trust_roots)


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
    """The numbered report signed by its issuing agency, last: the red seal (a PNG on a
    transparent background) at its real size (`seal_mm` across, else as the PNG's resolution
    tells, else 38 mm), over the left third of the director's signature image. The signature
    locks the number and the date: changing either afterwards breaks it."""
    ensure_off_event_loop("seal_as_agency")
    image = png(seal, what="seal")
    ensure_in_force(signer)
    writer = _writer_for(pdf)
    found = fields_of(writer.root)
    if not is_signed(found.get(DIRECTOR)):
        raise SigningRefused("the director has not signed this PDF: the agency signs after the director")
    if is_signed(found.get(AGENCY)):
        raise SigningRefused("the agency has signed this PDF already")
    if not _numbered(writer):
        raise SigningRefused("this PDF has no number and date yet: the register gives them before the agency signs")
    spec = fields.SigFieldSpec(
        AGENCY,
        on_page=layout.signature.page,
        box=seal_box(rect_of(found[DIRECTOR]), seal_diameter(image, seal_mm)),
        readable_field_name=READABLE[AGENCY],
        field_mdp_spec=fields.FieldMDPSpec(fields.FieldMDPAction.INCLUDE, fields=[NUMBER, PLACE_DATE]),
    )
    return _sign(writer, signer, spec, seal_style(image), timestamper=timestamper, trust_roots=trust_roots)


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


def _sign(
    writer: IncrementalPdfFileWriter,
    signer: signers.Signer,
    spec: fields.SigFieldSpec,
    style: BaseStampStyle,
    *,
    timestamper: TimeStamper | None,
    trust_roots: Sequence[bytes] | None,
) -> bytes:
    context = None
    if trust_roots:
        context = ValidationContext(
            trust_roots=[asn1_x509.Certificate.load(root) for root in trust_roots],
            allow_fetching=True,
            revocation_mode="soft-fail",  # embed what can be fetched; a revoked certificate still fails
        )
    metadata = signers.PdfSignatureMetadata(
        field_name=spec.sig_field_name,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        reason=REASONS[spec.sig_field_name],
        embed_validation_info=context is not None,
        validation_context=context,
        # The revocation information in the signature's own revision (PAdES-B-LT in one revision):
        # no revision follows the agency's signature, which pyHanko 0.38 would misjudge as a change
        # to the fields it locks (see verification.DIFF_POLICY).
        dss_settings=DSSContentSettings(placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE, include_vri=False),
    )
    assert signer.signing_cert is not None  # ensure_in_force checked it
    text = {"name": common_name(signer.signing_cert), "when": _shown(dt.datetime.now(dt.UTC))}
    pdf_signer = signers.PdfSigner(metadata, signer, timestamper=timestamper, stamp_style=style, new_field_spec=spec)
    try:
        out = pdf_signer.sign_pdf(writer, appearance_text_params=text)
    except TimestampRequestError as error:
        where = getattr(timestamper, "url", "the timestamp authority")
        raise SignerUnavailable(f"the timestamp authority at {where} did not answer: {error}") from error
    except (PathBuildingError, PathValidationError) as error:
        raise SigningRefused(f"the signer's certificate does not chain to the trust roots: {error}") from error
    except SigningError as error:
        raise SigningRefused(f"pyHanko refused to sign: {error}") from error
    return bytes(out.getvalue())
