"""The consolidated report as PDF (fpdf2), laid out as Decree 30/2020/NĐ-CP asks
(`../shared/docs/report-format.md`): A4 portrait, margins 20/20/30/15 mm, the issuing body and
the national motto side by side at the top, number and symbol, place and date, the type and
summary centred, a justified body, recipients and signature side by side at the end, page
numbers centred at the top from page 2. It embeds DejaVu Serif (shipped in `fonts/`, free to
redistribute), which has every Vietnamese glyph.

`pdf_with_layout` also tells where the signatures and the register's entries go
(`PdfLayout`): the director's signature image between the position title and the name, and the
lines of the number and of the place and date, which the register fills after the director
signed (`approvals.signing`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from approvals.consolidated.document import ReportDocument

if TYPE_CHECKING:  # fpdf2 is imported when a report is written
    from fpdf.enums import XPos, YPos

FONTS = Path(__file__).resolve().parent / "fonts"
MM = 72 / 25.4  # PDF points in a millimetre
SIGNATURE_GAP_MM = 24  # between the position title and the name: the signature and the seal


@dataclass(frozen=True)
class Box:
    """A rectangle on a page, in PDF points from the page's lower left corner (as PDF's own
    coordinates and pyHanko's field boxes go); `page` counts from 0."""

    page: int
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1


@dataclass(frozen=True)
class TextLine:
    """A line of the heading: where it lies (the width of its column, the height of the line),
    what it says as written, and how (size in points, italic or not)."""

    box: Box
    text: str
    size: float
    italic: bool


@dataclass(frozen=True)
class PdfLayout:
    """Where the signatures and the register's entries go in the report's PDF."""

    signature: Box  # the space between the position title ("GIÁM ĐỐC") and the signer's name
    number: TextLine  # "Số: 12/BC-SKHCN", under the issuing body
    place_date: TextLine  # "Lạng Sơn, ngày 05 tháng 12 năm 2026", under the motto


class _Below(TypedDict):
    """Where fpdf2 goes on after a cell: to the left margin of the next line."""

    new_x: XPos
    new_y: YPos


def to_pdf(doc: ReportDocument) -> bytes:
    return pdf_with_layout(doc)[0]


def pdf_with_layout(doc: ReportDocument, *, number_and_date_as_fields: bool = False) -> tuple[bytes, PdfLayout]:
    """The report's PDF and where its signatures and register entries go. With
    `number_and_date_as_fields`, the lines of the number and of the place and date are left
    empty on the page (the space kept): form fields over them carry the text instead, so that
    the register can fill them after the director signed without breaking the signature."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    class Report(FPDF):
        def header(self) -> None:
            if self.page_no() > 1:  # numbered from page 2, centred in the top margin
                self.set_font("serif", "", 13)
                self.set_y(8)
                self.cell(0, 8, str(self.page_no()), align="C")
                self.set_y(20)

    pdf = Report(format="A4", unit="mm")
    pdf.set_margins(30, 20, 15)
    pdf.set_auto_page_break(True, margin=20)
    for style, name in (
        ("", "DejaVuSerif.ttf"),
        ("B", "DejaVuSerif-Bold.ttf"),
        ("I", "DejaVuSerif-Italic.ttf"),
        ("BI", "DejaVuSerif-BoldItalic.ttf"),
    ):
        pdf.add_font("serif", style, str(FONTS / name))
    pdf.set_title(f"{doc.kind} {doc.subject}")
    pdf.set_lang("vi")
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    below = _Below(new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def box(x: float, top: float, w: float, bottom: float) -> Box:
        """fpdf2's millimetres from the top left as PDF points from the bottom left."""
        return Box(pdf.page_no() - 1, x * MM, (pdf.h - bottom) * MM, (x + w) * MM, (pdf.h - top) * MM)

    entries: dict[str, TextLine] = {}

    def column(x: float, w: float, lines: Iterable[tuple[str, float, str, float, str]]) -> float:
        pdf.set_xy(x, 20)
        for text, size, style, rule, entry in lines:
            pdf.set_font("serif", style, size)
            pdf.set_x(x)
            top = pdf.get_y()
            shown = " " if entry and number_and_date_as_fields else text
            pdf.multi_cell(w, size * 0.45, shown, align="C", **below)
            if entry:
                entries[entry] = TextLine(box(x, top, w, pdf.get_y()), text, size, "I" in style)
            if rule:
                y = pdf.get_y() + 0.5
                pdf.line(x + w / 2 - rule / 2, y, x + w / 2 + rule / 2, y)
                pdf.set_y(y + 1.5)
        return pdf.get_y()

    left_w, right_w = 68, width - 68
    end_left = column(
        pdf.l_margin - 8,
        left_w + 8,
        [(doc.governing_body, 11, "", 0, ""), (doc.issuing_body, 11, "B", 25, ""), (doc.number, 12, "", 0, "number")],
    )
    end_right = column(
        pdf.l_margin + left_w,
        right_w,
        [
            ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", 11, "B", 0, ""),
            ("Độc lập - Tự do - Hạnh phúc", 12, "B", 50, ""),
            (doc.place_date, 12, "I", 0, "place_date"),
        ],
    )
    pdf.set_y(max(end_left, end_right) + 6)

    def para(
        text: str,
        *,
        size: float = 13,
        style: str = "",
        align: str = "J",
        indent: bool = True,
        after: float = 2.0,
        height: float = 6.2,
    ) -> None:
        pdf.set_font("serif", style, size)
        pdf.multi_cell(0, height, ("\u00a0" * 8 + text) if indent else text, align=align, **below)
        pdf.ln(after)

    for mark in doc.marks:
        para(mark, size=12, style="B", align="C", indent=False, after=1)
    para(doc.kind, size=13, style="B", align="C", indent=False, after=0)
    para(doc.subject, size=13, style="B", align="C", indent=False, after=5)
    for text in doc.intro:
        para(text)
    para(doc.table_heading, style="B", align="L", indent=False)
    para(doc.missing)
    pdf.set_font("serif", "", 10.5)
    with pdf.table(
        col_widths=(10, 70, 55, 25), text_align=("C", "L", "L", "C"), line_height=5.2, first_row_as_headings=True
    ) as table:
        for values in [doc.table_header, *doc.table]:
            row = table.row()
            for value in values:
                row.cell(value)
    pdf.ln(4)
    para(doc.sections_heading, style="B", align="L", indent=False)
    for part in doc.sections:
        para(part.heading, style="B", align="L", indent=False, after=1)
        for text in part.paragraphs:
            para(text)
        if part.links:
            para("Liên kết: " + "; ".join(part.links), size=12, align="L")
        if part.files:
            para("Tệp đính kèm: " + "; ".join(part.files), size=12, align="L")
    para(doc.summary_heading, style="B", align="L", indent=False)
    for text in doc.summary:
        para(text)

    pdf.ln(4)
    if pdf.get_y() > pdf.h - 70:  # recipients and signature stay together
        pdf.add_page()
    top = pdf.get_y()
    pdf.set_font("serif", "BI", 12)
    pdf.cell(80, 6, "Nơi nhận:", **below)
    pdf.set_font("serif", "", 11)
    for recipient in doc.recipients:
        pdf.multi_cell(80, 5.2, recipient, **below)
    pdf.set_xy(pdf.l_margin + 80, top)
    pdf.set_font("serif", "B", 13)
    pdf.multi_cell(width - 80, 6.5, doc.signer_title, align="C", **below)
    gap = pdf.get_y()
    signature = box(pdf.l_margin + 80, gap, width - 80, gap + SIGNATURE_GAP_MM)
    pdf.set_xy(pdf.l_margin + 80, gap + SIGNATURE_GAP_MM)
    pdf.multi_cell(width - 80, 6.5, doc.signer_name, align="C", **below)
    return bytes(pdf.output()), PdfLayout(signature, entries["number"], entries["place_date"])
