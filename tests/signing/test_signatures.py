"""The 2026 report signed as Decree 30/2020 orders it, on the report's real PDF: the director
signs, the register writes the number and the date, the agency signs last with its seal. Both
signatures verify as valid, intact and trusted, by our verification and by pyHanko's defaults;
the director's accepts the number and date as form filling; a changed byte in either signed
range, or a number changed after the report was issued, shows as modified; the steps refuse to
run out of order; the texts keep their diacritics; the seal covers the left third of the
director's signature image, at its real size."""

from __future__ import annotations

import io
import re
import unicodedata

import pypdfium2
import pytest
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from approvals.signing.appearance import CAPTION_HEIGHT
from approvals.signing.errors import SigningRefused
from approvals.signing.form import AGENCY, DIRECTOR, fields_of, rect_of
from approvals.signing.register import fill_number_and_date
from approvals.signing.signatures import seal_as_agency, sign_as_director
from approvals.signing.verification import Verdict, verify
from tests.signing.conftest import ARTIFACTS, NUMBER, PLACE_DATE, flattened_text

MM = 72 / 25.4


def _checks(pdf: bytes, local_pki) -> dict[str, object]:
    return {check.field: check for check in verify(pdf, trust_roots=[local_pki.root])}


def test_both_signatures_are_valid_intact_and_trusted_and_the_number_and_date_count_as_form_filling(
    issued, local_pki, pki_signers
):
    director, agency = verify(issued.sealed, trust_roots=[local_pki.root])

    assert (director.field, agency.field) == (DIRECTOR, AGENCY)  # in the decree's order
    for check, role in ((director, "director"), (agency, "agency")):
        assert check.verdict is Verdict.valid and check.intact and check.trusted, check
        assert check.fingerprint == pki_signers[role].signing_cert.sha256.hex()
        assert check.signer == pki_signers[role].signing_cert.subject.native["common_name"]
    assert director.signer == "Nguyễn Thị Lấp Lánh Ánh (THỬ NGHIỆM - TEST)"
    assert director.organisation == "Sở Khoa học và Công nghệ"
    # The register's number and date, written after the director signed, are accepted as form
    # filling; nothing was written after the agency signed.
    assert director.modification_level == "form_filling"
    assert agency.modification_level == "none"
    assert director.summary("vi").endswith(": hợp lệ") and agency.summary("en").endswith(": valid")

    # pyHanko's own defaults (any verifier using pyHanko) agree: nothing after the signatures but
    # form filling, no "modified after signing".
    context = ValidationContext(trust_roots=[asn1_x509.Certificate.load(local_pki.root)])
    for embedded in PdfFileReader(io.BytesIO(issued.sealed)).embedded_signatures:
        status = validate_pdf_signature(embedded, context)
        assert status.bottom_line and status.docmdp_ok, status.summary()
        assert "ILLEGAL" not in status.summary() and "INVALID" not in status.summary()


def _flip(pdf: bytes, at: int) -> bytes:
    """One byte changed: a digit to another digit (the file still parses)."""
    changed = bytearray(pdf)
    changed[at] = ord("7") if changed[at] != ord("7") else ord("8")
    return bytes(changed)


def _signing_times(pdf: bytes) -> list[int]:
    """Where the last digit of the year of each signature's /M time lies in the file."""
    return [match.start(1) + 3 for match in re.finditer(rb"/M \(D(?::|\\072)(\d{14})", pdf)]


def _ranges(pdf: bytes) -> list[list[int]]:
    return [[int(v) for v in m.group(1).split()] for m in re.finditer(rb"/ByteRange \[([\d ]+)\]", pdf)]


def _covers(byte_range: list[int], at: int) -> bool:
    """Whether a signature's /ByteRange (two spans around its /Contents) covers a byte."""
    start, length, after, after_length = byte_range
    return start <= at < start + length or after <= at < after + after_length


def test_a_byte_changed_in_a_signed_range_shows_as_modified_after_signing_for_that_signature(issued, local_pki):
    director_time, agency_time = _signing_times(issued.sealed)
    director_range, agency_range = _ranges(issued.sealed)
    assert _covers(director_range, director_time) and _covers(agency_range, director_time)
    assert _covers(agency_range, agency_time) and not _covers(director_range, agency_time)

    # A byte of the director's revision: both signatures cover it.
    checks = _checks(_flip(issued.sealed, director_time), local_pki)
    assert checks[DIRECTOR].verdict is Verdict.modified and not checks[DIRECTOR].intact
    assert checks[AGENCY].verdict is Verdict.modified
    assert checks[DIRECTOR].summary("vi").endswith("đã bị sửa sau khi ký")
    assert checks[DIRECTOR].summary("en").endswith("modified after signing")

    # A byte of the agency's revision: its signature breaks, the director's still holds.
    checks = _checks(_flip(issued.sealed, agency_time), local_pki)
    assert checks[AGENCY].verdict is Verdict.modified and not checks[AGENCY].intact
    assert checks[DIRECTOR].verdict is Verdict.valid


def test_a_number_changed_after_the_report_was_issued_breaks_the_agency_signature(issued, local_pki):
    writer = IncrementalPdfFileWriter(io.BytesIO(issued.sealed))
    field = fields_of(writer.root)["number"]
    field[generic.NameObject("/V")] = generic.TextStringObject("Số: 118/BC-SKHCN")
    writer.update_container(field)
    out = io.BytesIO()
    writer.write(out)

    checks = _checks(out.getvalue(), local_pki)
    assert checks[AGENCY].verdict is Verdict.modified  # the agency's signature locks the number
    assert "locked" in (checks[AGENCY].problem or "")
    assert checks[DIRECTOR].verdict is Verdict.valid  # for the director's, still form filling
    with pytest.raises(SigningRefused, match="sealed"):  # and the register no longer fills it
        fill_number_and_date(issued.sealed, number="Số: 118/BC-SKHCN", place_date=PLACE_DATE)


def test_each_step_refuses_to_run_out_of_the_decrees_order(report, issued, pki_signers, signing_images):
    with pytest.raises(SigningRefused, match="director has not signed"):
        fill_number_and_date(report.pdf, number=NUMBER, place_date=PLACE_DATE)
    seal = {"layout": report.layout, "seal": signing_images["seal"]}
    with pytest.raises(SigningRefused, match="director has not signed"):
        seal_as_agency(report.pdf, pki_signers["agency"], **seal)
    with pytest.raises(SigningRefused, match="no number and date yet"):
        seal_as_agency(issued.signed, pki_signers["agency"], **seal)
    with pytest.raises(SigningRefused, match="signed this PDF already"):
        seal_as_agency(issued.sealed, pki_signers["agency"], **seal)
    with pytest.raises(SigningRefused, match="director to sign already"):
        sign_as_director(
            issued.signed, pki_signers["director"], layout=report.layout, image=signing_images["signature"]
        )


def test_the_number_the_date_and_the_stamp_keep_their_vietnamese_diacritics(report, issued):
    first = flattened_text(issued.sealed, 0)
    assert NUMBER in first and PLACE_DATE in first
    last = flattened_text(issued.sealed, report.layout.signature.page)
    assert "Ký số: Nguyễn Thị Lấp Lánh Ánh (THỬ NGHIỆM - TEST)" in last
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00", last)  # ISO 8601, Vietnam's time
    assert unicodedata.is_normalized("NFC", first) and unicodedata.is_normalized("NFC", last)
    # Before the register filled them, the director saw the blank forms.
    assert "Số:" in flattened_text(issued.signed, 0) and NUMBER not in flattened_text(issued.signed, 0)

    reader = PdfFileReader(io.BytesIO(issued.sealed))
    fields = fields_of(reader.root)
    assert (str(fields["number"]["/V"]), str(fields["place_date"]["/V"])) == (NUMBER, PLACE_DATE)
    fonts = {
        str(font.get_object()["/BaseFont"])
        for name in ("number", "place_date", DIRECTOR)
        for font in _widget(fields[name])["/AP"]["/N"]["/Resources"]["/Font"].values()
    }
    assert {re.sub(r"^/[A-Z]{6}\+", "", f) for f in fonts} == {
        "DejaVuSerif-Identity-H",
        "DejaVuSerif-Italic-Identity-H",
    }  # embedded subsets of the report's own font


def _widget(field):
    return field["/Kids"][0].get_object() if "/Kids" in field else field


def test_the_seal_covers_the_left_third_of_the_director_signature_at_its_real_size(report, issued):
    fields = fields_of(PdfFileReader(io.BytesIO(issued.sealed)).root)
    dx1, dy1, dx2, dy2 = rect_of(fields[DIRECTOR])
    sx1, sy1, sx2, sy2 = rect_of(fields[AGENCY])
    space = report.layout.signature

    # The director's image lies between the title and the name, centred.
    assert space.x1 <= dx1 < dx2 <= space.x2 and space.y1 - 1 <= dy1 < dy2 <= space.y2 + 1
    assert abs((dx1 + dx2) / 2 - (space.x1 + space.x2) / 2) <= 1
    # The seal: 38 mm across (the test seal's PNG says 300 dpi), over the image's left third.
    assert abs((sx2 - sx1) / MM - 38) < 0.5 and abs((sy2 - sy1) / MM - 38) < 0.5
    image_width = dx2 - dx1
    overlap = min(sx2, dx2) - max(sx1, dx1)
    assert 0.3 <= overlap / image_width <= 0.37 and sx1 < dx1  # the left third, no more
    image_middle = (dy1 + CAPTION_HEIGHT + dy2) / 2
    assert abs((sy1 + sy2) / 2 - image_middle) <= 1

    # As a reader sees it: red where the seal's ring is, blue where the signature is.
    page = pypdfium2.PdfDocument(io.BytesIO(issued.sealed))
    page.init_forms()
    image = page[space.page].render(scale=2, may_draw_forms=True).to_pil().convert("RGB")
    height = image.height / 2

    def pixels(x1, y1, x2, y2):
        box = (round(x1 * 2), round((height - y2) * 2), round(x2 * 2), round((height - y1) * 2))
        return list(image.crop(box).getdata())

    assert any(r > 150 and g < 80 and b < 80 for r, g, b in pixels(sx1, sy1, sx2, sy2))  # the seal's red
    right_of_seal = pixels(sx2 + 2, dy1 + CAPTION_HEIGHT, dx2, dy2)
    assert any(b > 120 and r < 80 for r, g, b in right_of_seal)  # the signature's blue
    ARTIFACTS.mkdir(exist_ok=True)
    image.crop((0, round((height - sy2 - 30) * 2), image.width, round((height - sy1 + 30) * 2))).save(
        ARTIFACTS / "signed-report-signature-block.png"
    )
