"""The consolidated report's files: written as DOCX (python-docx) and PDF (fpdf2), laid out as Decree
30/2020/NĐ-CP asks (`../shared/docs/report-format.md`): A4 portrait, margins 20/20/30/15 mm,
the issuing body and the national motto side by side at the top, number and symbol, place and
date, the type and summary centred, a justified body, recipients and signature side by side
at the end, page numbers centred at the top from page 2.

The DOCX names Times New Roman (what Word and LibreOffice show; Liberation Serif stands in for
it); the PDF (`pdf_file`) embeds DejaVu Serif (shipped in `fonts/`, free to redistribute), which
has every Vietnamese glyph."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from approvals.consolidated.document import ReportDocument
from approvals.consolidated.pdf_file import to_pdf

if TYPE_CHECKING:  # python-docx is imported when a report is written
    from docx.document import Document as DocxDocument
    from docx.enum.text import WD_PARAGRAPH_ALIGNMENT
    from docx.oxml.xmlchemy import BaseOxmlElement
    from docx.shared import Length, Pt
    from docx.table import _Cell
    from docx.text.paragraph import Paragraph

__all__ = ["DOCX_TYPE", "PDF_TYPE", "report_files", "to_docx", "to_pdf"]

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PDF_TYPE = "application/pdf"

Line = tuple[str, float, bool, bool]
"""A line of a heading cell: text, size (points), bold, italic."""


# DOCX -----------------------------------------------------------------------------------------


def to_docx(doc: ReportDocument) -> bytes:
    from docx import Document
    from docx.enum.table import WD_TABLE_ALIGNMENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Cm, Mm, Pt

    out = Document()
    section = out.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(20), Mm(20)
    section.left_margin, section.right_margin = Mm(30), Mm(15)
    section.different_first_page_header_footer = True  # the first page is not numbered
    number = section.header.paragraphs[0]
    number.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _page_field(number, OxmlElement, qn, Pt(13))

    normal = out.styles["Normal"]
    normal.font.name = "Times New Roman"
    normal.font.size = Pt(14)
    normal.element.rPr.rFonts.set(qn("w:eastAsia"), "Times New Roman")
    normal.paragraph_format.space_after = Pt(0)

    def line(
        container: DocxDocument,
        text: str,
        *,
        size: float = 14,
        bold: bool = False,
        italic: bool = False,
        align: WD_PARAGRAPH_ALIGNMENT = WD_ALIGN_PARAGRAPH.CENTER,
        indent: bool = False,
        after: float = 0,
    ) -> Paragraph:
        paragraph = container.add_paragraph()
        paragraph.alignment = align
        paragraph.paragraph_format.space_after = Pt(after)
        if indent:
            paragraph.paragraph_format.first_line_indent = Cm(1.27)
            paragraph.paragraph_format.line_spacing = 1.15
        run = paragraph.add_run(text)
        run.font.size, run.bold, run.italic = Pt(size), bold, italic
        return paragraph

    # The heading: issuing body on the left, national title and motto on the right.
    top = out.add_table(rows=1, cols=2)
    top.alignment = WD_TABLE_ALIGNMENT.CENTER
    left, right = top.cell(0, 0), top.cell(0, 1)
    left.width, right.width = Mm(70), Mm(95)
    left.paragraphs[0].text = ""
    _fill(
        left,
        [
            (doc.governing_body, 12, False, False),
            (doc.issuing_body, 12, True, False),
            ("———", 12, False, False),
            (doc.number, 13, False, False),
        ],
        Pt,
        WD_ALIGN_PARAGRAPH,
    )
    _fill(
        right,
        [
            ("CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", 12, True, False),
            ("Độc lập - Tự do - Hạnh phúc", 13, True, False),
            ("———————", 12, False, False),
            (doc.place_date, 13, False, True),
        ],
        Pt,
        WD_ALIGN_PARAGRAPH,
    )

    line(out, "", after=6)
    for mark in doc.marks:
        line(out, mark, size=13, bold=True)
    line(out, doc.kind, bold=True)
    line(out, doc.subject, bold=True, after=12)
    for text in doc.intro:
        line(out, text, align=WD_ALIGN_PARAGRAPH.JUSTIFY, indent=True, after=6)

    line(out, doc.table_heading, bold=True, align=WD_ALIGN_PARAGRAPH.LEFT, after=6)
    line(out, doc.missing, align=WD_ALIGN_PARAGRAPH.JUSTIFY, indent=True, after=6)
    table = out.add_table(rows=1 + len(doc.table), cols=len(doc.table_header))
    table.style = "Table Grid"
    for row, values in zip(table.rows, [doc.table_header, *doc.table], strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.paragraphs[0].text = ""
            run = cell.paragraphs[0].add_run(value)
            run.font.size = Pt(12)
            run.bold = values is doc.table_header
    for row in table.rows:
        for cell, width in zip(row.cells, (Mm(12), Mm(73), Mm(52), Mm(28)), strict=True):
            cell.width = width

    line(out, "", after=6)
    line(out, doc.sections_heading, bold=True, align=WD_ALIGN_PARAGRAPH.LEFT, after=6)
    for part in doc.sections:
        line(out, part.heading, bold=True, align=WD_ALIGN_PARAGRAPH.LEFT, after=3)
        for text in part.paragraphs:
            line(out, text, align=WD_ALIGN_PARAGRAPH.JUSTIFY, indent=True, after=3)
        if part.links:
            line(out, "Liên kết: " + "; ".join(part.links), size=13, align=WD_ALIGN_PARAGRAPH.LEFT, indent=True)
        if part.files:
            line(out, "Tệp đính kèm: " + "; ".join(part.files), size=13, align=WD_ALIGN_PARAGRAPH.LEFT, indent=True)
        line(out, "", after=3)

    line(out, doc.summary_heading, bold=True, align=WD_ALIGN_PARAGRAPH.LEFT, after=6)
    for text in doc.summary:
        line(out, text, align=WD_ALIGN_PARAGRAPH.JUSTIFY, indent=True, after=6)

    # The end: recipients on the left, the signature on the right.
    line(out, "", after=6)
    end = out.add_table(rows=1, cols=2)
    left, right = end.cell(0, 0), end.cell(0, 1)
    left.width, right.width = Mm(85), Mm(80)
    _fill(
        left,
        [("Nơi nhận:", 12, True, True), *((r, 11, False, False) for r in doc.recipients)],
        Pt,
        WD_ALIGN_PARAGRAPH,
        align=WD_ALIGN_PARAGRAPH.LEFT,
    )
    _fill(
        right,
        [
            (doc.signer_title, 14, True, False),
            ("", 14, False, False),
            ("", 14, False, False),
            ("", 14, False, False),
            (doc.signer_name, 14, True, False),
        ],
        Pt,
        WD_ALIGN_PARAGRAPH,
    )
    data = io.BytesIO()
    out.save(data)
    return data.getvalue()


def _fill(
    cell: _Cell,
    lines: Iterable[Line],
    Pt: type[Pt],
    WD_ALIGN_PARAGRAPH: type[WD_PARAGRAPH_ALIGNMENT],
    align: WD_PARAGRAPH_ALIGNMENT | None = None,
) -> None:
    first = True
    for text, size, bold, italic in lines:
        paragraph = cell.paragraphs[0] if first else cell.add_paragraph()
        first = False
        paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER if align is None else align
        run = paragraph.add_run(text)
        run.font.size, run.bold, run.italic = Pt(size), bold, italic


def _page_field(
    paragraph: Paragraph,
    OxmlElement: Callable[[str], BaseOxmlElement],
    qn: Callable[[str], str],
    size: Length,
) -> None:
    """A PAGE field: Word fills in each page's number."""
    run = paragraph.add_run()
    run.font.size = size
    for kind, text in (("begin", None), (None, "PAGE"), ("end", None)):
        if kind:
            element = OxmlElement("w:fldChar")
            element.set(qn("w:fldCharType"), kind)
        else:
            element = OxmlElement("w:instrText")
            element.set(qn("xml:space"), "preserve")
            element.text = text
        run._r.append(element)


def file_stem(doc: ReportDocument, *, year: int) -> str:
    """The report's file name without its extension: bao-cao-tong-hop-2026 (-du-thao for a draft)."""
    return f"{doc.filename_stem}-{year}"


def report_files(doc: ReportDocument, *, year: int) -> list[tuple[str, str, bytes]]:
    """The report as both files, (file name, content type, bytes) each: DOCX first, then PDF.
    A few hundred ms of CPU: call it off the event loop (asyncio.to_thread)."""
    stem = file_stem(doc, year=year)
    return [(f"{stem}.docx", DOCX_TYPE, to_docx(doc)), (f"{stem}.pdf", PDF_TYPE, to_pdf(doc))]
