"""Anyone can check the issued report: for each signature in a PDF, who signed and when, whether
the document is intact since, and whether the certificate chains to the configured trust roots
and was valid when it signed. pyHanko validates (`validate_pdf_signature` with a
`ValidationContext` on the trust roots); this module only reads its answers.

- Integrity: the signature's digest and value (`intact`, `valid`), and pyHanko's difference
  analysis of every later revision (`modification_level`): the register's number and date after
  the director's signature are FORM_FILLING, accepted; a change to a page is OTHER, "modified".
- Time: a signature's timestamp, when it has a trusted one, is when it was made; the chain is
  then checked as it stood at that moment, with the revocation information the document carries
  (PAdES-B-LT), so a certificate that expired since still verifies. Without a timestamp, only
  the signer's own clock says when: the chain is checked as it stands now, and a certificate
  expired since reads as not valid at signing time (nothing proves it signed before).

Blocking (pyHanko runs its own event loop): call it off the event loop."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    FormUpdatingRule,
    GenericFieldModificationRule,
    ModificationLevel,
    SigFieldCreationRule,
    SigFieldModificationRule,
    StandardDiffPolicy,
)
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.validation import DocumentSecurityStore, EmbeddedPdfSignature, validate_pdf_signature
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext

from approvals.signing.errors import NotASignedDocument
from approvals.signing.signatures import ensure_off_event_loop
from approvals.signing.test_pki import TEST_MARK

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")

DIFF_POLICY = StandardDiffPolicy(
    global_rules=DEFAULT_DIFF_POLICY.global_rules,
    form_rule=FormUpdatingRule(
        field_rules=[
            SigFieldCreationRule(),
            SigFieldModificationRule(allow_in_place_appearance_stream_changes=False),
            GenericFieldModificationRule(allow_in_place_appearance_stream_changes=False),
        ]
    ),
)
"""pyHanko's default policy, but for one check: whether a field's appearance stream was rewritten
in place. In pyHanko 0.38 that check (`_allow_in_place_appearance_update`) reports every field's
unchanged appearance stream made before the previous revision as updated, and a field lock then
rejects it: the agency's signature locks the number and the date, so any revision after it (an
LTA timestamp, a recipient's own signature) would break it. kehoach never rewrites an appearance
stream in place (each filling makes new ones), so the check is left out; a new appearance is
still judged as form filling, and a change to a locked field is still caught."""


class Verdict(str, enum.Enum):
    """A signature's bottom line, most serious first."""

    invalid = "invalid"  # the signature's value does not verify, or cannot be read
    modified = "modified"  # the signed bytes changed, or a later revision changed more than form filling
    revoked = "revoked"
    not_valid_at_signing = "not_valid_at_signing"  # expired or not yet valid when it signed
    not_trusted = "not_trusted"  # no chain to the trust roots
    valid = "valid"

    def text(self, language: str) -> str:
        return VERDICTS[self][language] if language in VERDICTS[self] else VERDICTS[self]["vi"]


VERDICTS: dict[Verdict, dict[str, str]] = {
    Verdict.invalid: {"vi": "chữ ký không hợp lệ", "en": "invalid signature"},
    Verdict.modified: {"vi": "đã bị sửa sau khi ký", "en": "modified after signing"},
    Verdict.revoked: {"vi": "chứng thư số đã bị thu hồi", "en": "certificate revoked"},
    Verdict.not_valid_at_signing: {
        "vi": "chứng thư số không có hiệu lực khi ký",
        "en": "certificate not valid at signing time",
    },
    Verdict.not_trusted: {"vi": "không được tin cậy", "en": "not trusted"},
    Verdict.valid: {"vi": "hợp lệ", "en": "valid"},
}


OUT_OF_VALIDITY = frozenset(
    {
        AdESIndeterminate.EXPIRED,
        AdESIndeterminate.NOT_YET_VALID,
        AdESIndeterminate.OUT_OF_BOUNDS_NO_POE,  # expired, and no timestamp proves it signed before
        AdESIndeterminate.OUT_OF_BOUNDS_NOT_REVOKED,
        AdESFailure.NOT_YET_VALID,
    }
)


@dataclass(frozen=True)
class SignatureCheck:
    field: str  # the signature's field: "director", "agency"
    signer: str  # the certificate's common name
    organisation: str | None  # the certificate's organisation
    fingerprint: str  # SHA-256 of the signer's certificate, hex
    signed_at: dt.datetime | None  # as the signer's clock said, in Vietnam's time
    timestamp: dt.datetime | None  # the timestamp authority's time, when it has a trusted one
    intact: bool  # the signed bytes unchanged, and nothing changed since but what is allowed
    modification_level: str | None  # "none", "lta_updates", "form_filling", "annotations", "other"
    trusted: bool  # chains to the trust roots, valid (not expired, not revoked) at `checked_at`
    checked_at: dt.datetime  # the moment the chain was checked for: the timestamp, else now
    long_term: bool  # the document carries the signer certificate's revocation information (B-LT)
    verdict: Verdict
    problem: str | None = None  # what pyHanko said went wrong, when something did

    @property
    def by_test_certificate(self) -> bool:
        """Whether the signer's certificate is one `kehoach demo` or a rehearsal made (never real)."""
        return TEST_MARK in self.signer

    def summary(self, language: str = "vi") -> str:
        """One line: "Nguyễn Văn An (Sở ...): hợp lệ"."""
        who = f"{self.signer} ({self.organisation})" if self.organisation else self.signer
        return f"{who}: {self.verdict.text(language)}"


def document_digest(pdf: bytes) -> str:
    """SHA-256 of a file, hex: what the audit log records of a signed report."""
    return hashlib.sha256(pdf).hexdigest()


def verify(pdf: bytes, *, trust_roots: Sequence[bytes], fetch: bool = False) -> list[SignatureCheck]:
    """Each signature of a PDF, in the order they were made (none for an unsigned PDF). The trust
    roots are DER certificates. `fetch` also asks the OCSP and CRL services the certificates name
    for what the document does not carry (only for a signature without a trusted timestamp,
    checked as of now)."""
    ensure_off_event_loop("verify")
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        found = list(enumerate_sig_fields(reader, filled_status=True))
        carried = _carried(reader)
    except (PdfError, ValueError, IndexError, KeyError, TypeError) as error:
        raise NotASignedDocument(f"not a readable PDF: {error}") from error
    roots = [asn1_x509.Certificate.load(root) for root in trust_roots]
    checks: list[tuple[int, SignatureCheck]] = []
    for name, value, field in found:
        try:
            signature = EmbeddedPdfSignature(reader, field, name)
        except Exception as error:  # its signature cannot even be read (a byte changed in it)
            checks.append((reader.xrefs.get_last_change(value.reference), _unreadable(name, error)))
            continue
        if signature.sig_object_type == "/Sig":  # not a document timestamp
            checks.append((signature.signed_revision, _check(signature, roots, carried, fetch=fetch)))
    return [check for _, check in sorted(checks, key=lambda pair: pair[0])]


@dataclass(frozen=True)
class _Carried:
    """What the document's security store carries: certificates, OCSP responses, CRLs."""

    certificates: list[asn1_x509.Certificate]
    ocsps: list[asn1_ocsp.OCSPResponse]
    crls: list[asn1_crl.CertificateList]


def _carried(reader: PdfFileReader) -> _Carried:
    try:
        store = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        return _Carried([], [], [])
    return _Carried(
        list(store.load_certs()),
        [asn1_ocsp.OCSPResponse.load(ref.get_object().read_data(DecodePurpose.OCSP_RESPONSE)) for ref in store.ocsps],
        [asn1_crl.CertificateList.load(ref.get_object().read_data(DecodePurpose.CRL)) for ref in store.crls],
    )


def _context(
    roots: list[asn1_x509.Certificate], carried: _Carried, *, fetch: bool = False, moment: dt.datetime | None = None
) -> ValidationContext:
    return ValidationContext(
        trust_roots=roots,
        other_certs=carried.certificates,
        ocsps=carried.ocsps,
        crls=carried.crls,
        allow_fetching=fetch,
        moment=moment,
        revocation_mode="soft-fail",
    )


def _check(
    signature: EmbeddedPdfSignature, roots: list[asn1_x509.Certificate], carried: _Carried, *, fetch: bool
) -> SignatureCheck:
    now = dt.datetime.now(dt.UTC)
    try:
        status = validate_pdf_signature(signature, _context(roots, carried, fetch=fetch), diff_policy=DIFF_POLICY)
        checked_at = now
        stamp = status.timestamp_validity
        if stamp is not None and stamp.trusted and not status.trusted and not status.revoked:
            # Perhaps expired since: check the chain as it stood when the timestamp was given.
            checked_at = stamp.timestamp
            status = validate_pdf_signature(
                signature, _context(roots, carried, moment=checked_at), diff_policy=DIFF_POLICY
            )
    except Exception as error:  # an unreadable signature (a byte changed in it): pyHanko raises many kinds
        return _unreadable(str(signature.field_name), error, signature)
    certificate = status.signing_cert
    stamp = status.timestamp_validity
    level = status.modification_level
    untouched = status.intact and status.valid
    allowed = level is not None and level <= ModificationLevel.FORM_FILLING and status.docmdp_ok is not False
    return SignatureCheck(
        field=str(signature.field_name),
        signer=_name_part(certificate, "common_name"),
        organisation=_name_part(certificate, "organization_name") or None,
        fingerprint=certificate.sha256.hex(),
        signed_at=_vietnam(status.signer_reported_dt),
        timestamp=_vietnam(stamp.timestamp) if stamp is not None and stamp.trusted else None,
        intact=untouched and allowed,
        modification_level=level.name.lower() if level is not None else None,
        trusted=status.trusted,
        checked_at=_vietnam(checked_at) or checked_at,
        long_term=_revocation_carried(certificate, carried),
        verdict=_verdict(status, untouched=untouched, allowed=allowed),
        problem=_problem(status),
    )


def _verdict(status: PdfSignatureStatus, *, untouched: bool, allowed: bool) -> Verdict:
    if not status.valid:
        return Verdict.invalid
    if not untouched or not allowed:
        return Verdict.modified
    if status.revoked:
        return Verdict.revoked
    if status.trust_problem_indic in OUT_OF_VALIDITY:
        return Verdict.not_valid_at_signing
    if not status.trusted:
        return Verdict.not_trusted
    return Verdict.valid


def _problem(status: PdfSignatureStatus) -> str | None:
    if status.trust_problem_indic is not None:
        return str(getattr(status.trust_problem_indic, "name", status.trust_problem_indic))
    diff = status.diff_result
    if isinstance(diff, Exception):
        return str(diff)
    return None


def _unreadable(field: str, error: Exception, signature: EmbeddedPdfSignature | None = None) -> SignatureCheck:
    now = dt.datetime.now(dt.UTC)
    try:
        assert signature is not None
        certificate = signature.signer_cert
        who, organisation = _name_part(certificate, "common_name"), _name_part(certificate, "organization_name")
        fingerprint = certificate.sha256.hex()
    except Exception:  # the signature's structure itself is broken
        who, organisation, fingerprint = "?", "", ""
    return SignatureCheck(
        field=field,
        signer=who,
        organisation=organisation or None,
        fingerprint=fingerprint,
        signed_at=None,
        timestamp=None,
        intact=False,
        modification_level=None,
        trusted=False,
        checked_at=_vietnam(now) or now,
        long_term=False,
        verdict=Verdict.invalid,
        problem=f"{type(error).__name__}: {error}",
    )


def _name_part(certificate: asn1_x509.Certificate, part: str) -> str:
    return str(certificate.subject.native.get(part, ""))


def _vietnam(moment: dt.datetime | None) -> dt.datetime | None:
    return moment.astimezone(VIETNAM) if moment is not None else None


def _revocation_carried(certificate: asn1_x509.Certificate, carried: _Carried) -> bool:
    """Whether the document carries an OCSP response about this certificate, or a CRL of its issuer."""
    serial = certificate.serial_number
    for response in carried.ocsps:
        for single in response.basic_ocsp_response["tbs_response_data"]["responses"]:
            if single["cert_id"]["serial_number"].native == serial:
                return True
    return any(crl.issuer == certificate.issuer for crl in carried.crls)
