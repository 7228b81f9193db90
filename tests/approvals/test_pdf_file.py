"""Where the report's PDF puts its signature block and its register entries (`PdfLayout`), in
the PDF's own points, checked against the text fpdf2 wrote there (pypdf reads each string's
position); and the report as its director signs it: not a draft, its number and date blank,
both lines left for the fields that carry them."""

from __future__ import annotations

import io

from pypdf import PdfReader

from approvals.consolidated.document import awaiting_number
from approvals.consolidated.pdf_file import pdf_with_layout, to_pdf
from tests.support.report_document import report_document


def _strings(pdf: bytes, page: int) -> list[tuple[str, float, float]]:
    """Each string the page shows, with its position (x, y of its baseline, in points)."""
    found: list[tuple[str, float, float]] = []

    def visit(text, cm, tm, font, size):
        if text.strip():
            found.append((text.strip(), tm[4] * cm[0] + cm[4], tm[5] * cm[3] + cm[5]))

    PdfReader(io.BytesIO(pdf)).pages[page].extract_text(visitor_text=visit)
    return found


def _where(strings: list[tuple[str, float, float]], text: str) -> tuple[float, float]:
    return next((x, y) for shown, x, y in strings if text in shown)


def test_the_layout_places_the_signature_between_the_title_and_the_name_and_the_entries_on_their_lines():
    document = report_document(number=117)
    pdf, layout = pdf_with_layout(document)

    signature = layout.signature
    last = len(PdfReader(io.BytesIO(pdf)).pages) - 1
    assert signature.page == last  # the signature block ends the report
    strings = _strings(pdf, last)
    _, title_y = _where(strings, "GIÁM ĐỐC")
    _, name_y = _where(strings, document.signer_name)
    assert name_y < signature.y1 < signature.y2 < title_y  # the space lies between them
    assert round(signature.height / (72 / 25.4)) == 24 and signature.width > 200  # 24 mm, the column's width
    assert signature.x1 > 72 * 110 / 25.4 - 1  # right of the recipients (30 + 80 mm)

    first = _strings(pdf, 0)
    for line, text in ((layout.number, "Số: 117/BC-SKHCN"), (layout.place_date, document.place_date)):
        x, y = _where(first, text)
        assert line.box.page == 0 and line.text == text
        assert line.box.x1 <= x < line.box.x2 and line.box.y1 <= y <= line.box.y2
    assert layout.place_date.italic and not layout.number.italic and layout.number.size == 12
    assert to_pdf(document)[:5] == b"%PDF-"  # the callers' function still writes it


def test_the_report_its_director_signs_is_not_a_draft_and_leaves_its_number_and_date_to_fields():
    signing = awaiting_number(report_document())
    assert not signing.draft and signing.marks == []
    assert signing.number == "Số:        /BC-SKHCN"
    assert signing.place_date == "Lạng Sơn, ngày      tháng      năm      "

    pdf, layout = pdf_with_layout(signing, number_and_date_as_fields=True)
    text = " ".join(shown for shown, _, _ in _strings(pdf, 0))
    assert "Số:" not in text and "Lạng Sơn, ngày" not in text and "DỰ THẢO" not in text
    assert layout.number.text == signing.number and layout.place_date.text == signing.place_date
    # The same place as when they are written on the page.
    _, written = pdf_with_layout(signing)
    assert layout == written
