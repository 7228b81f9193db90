"""The register's entries on the signed report: its number and its date (Decree 30/2020,
Art. 15(3): the system gives them once the director signed, before the agency signs).

The director signs first, so the number and the date are written afterwards, and must not break
that signature. pyHanko judges every revision after a signature with its difference analysis
(`pyhanko.sign.diff_analysis.DEFAULT_DIFF_POLICY`): a change to a page's content is level
OTHER, and the signature then reports the document modified; filling a form field that already
existed when the signature was made is level FORM_FILLING, which the policy accepts
(`GenericFieldModificationRule`: a new value `/V` and new appearance streams `/AP` for a field
of the signed revision). So the director's revision creates two read-only text fields over the
lines of the number and of the place and date, showing the blank forms ("Số:        /BC-SKHCN");
the register fills them; and the agency's signature then locks both (FieldMDP), so that changing
either after the report is issued breaks the agency's signature."""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import BasePdfFileWriter

from approvals.signing.appearance import text_appearance
from approvals.signing.errors import SigningRefused
from approvals.signing.form import AGENCY, DIRECTOR, NUMBER, PLACE_DATE, READABLE, Rect, fields_of, is_signed, rect_of
from approvals.signing.form import writer_for as _writer_for

if TYPE_CHECKING:  # a type only: approvals.consolidated imports this package, not the reverse
    from approvals.consolidated.pdf_file import PdfLayout

READ_ONLY = 1  # field flag: a reader cannot type in it
PRINT = 4  # annotation flag: printed with the page
ITALIC = {NUMBER: False, PLACE_DATE: True}  # as the report sets them (Decree 30: the date in italics)


def add_entry_fields(writer: BasePdfFileWriter, layout: PdfLayout) -> None:
    """The two text fields over their lines, showing them as the layout has them (the blank
    forms), added to the revision the director signs."""
    root = writer.root
    if "/AcroForm" not in root:
        root[pdf_name("/AcroForm")] = writer.add_object(generic.DictionaryObject())
        writer.update_root()
    form = root["/AcroForm"]
    if "/Fields" not in form:
        form[pdf_name("/Fields")] = generic.ArrayObject()
    if set(fields_of(writer.root)) & {NUMBER, PLACE_DATE, DIRECTOR}:
        raise SigningRefused("this PDF was given to a director to sign already: it has the register's fields")
    for name, line in ((NUMBER, layout.number), (PLACE_DATE, layout.place_date)):
        page_ref = writer.find_page_for_modification(line.box.page)[0]
        rect = (round(line.box.x1), round(line.box.y1), round(line.box.x2), round(line.box.y2))
        size = round(line.size)
        field = generic.DictionaryObject(
            {
                pdf_name("/FT"): pdf_name("/Tx"),
                pdf_name("/T"): generic.TextStringObject(name),
                pdf_name("/TU"): generic.TextStringObject(READABLE[name]),
                pdf_name("/Ff"): generic.NumberObject(READ_ONLY),
                pdf_name("/V"): generic.TextStringObject(line.text),
                pdf_name("/DA"): generic.pdf_string(f"/Helv {size} Tf 0 g"),  # for a viewer that redraws
                pdf_name("/Q"): generic.NumberObject(1),  # centred
                pdf_name("/Type"): pdf_name("/Annot"),
                pdf_name("/Subtype"): pdf_name("/Widget"),
                pdf_name("/F"): generic.NumberObject(PRINT),
                pdf_name("/P"): page_ref,
                pdf_name("/Rect"): generic.ArrayObject(generic.NumberObject(v) for v in rect),
            }
        )
        field[pdf_name("/AP")] = _appearance(writer, rect, line.text, size=size, italic=ITALIC[name])
        ref = writer.add_object(field)
        form["/Fields"].append(ref)
        writer.register_annotation(page_ref, ref)
    writer.update_container(form)


def fill_number_and_date(pdf: bytes, *, number: str, place_date: str) -> bytes:
    """The director-signed report with its number ("Số: 12/BC-SKHCN") and its place and date
    ("Lạng Sơn, ngày 05 tháng 12 năm 2026") written into the fields the director's revision
    made, as a new revision the director's signature accepts as form filling. Refused before
    the director signed, and once the agency sealed it."""
    writer = _writer_for(pdf)
    fields = fields_of(writer.root)
    if not is_signed(fields.get(DIRECTOR)) or not {NUMBER, PLACE_DATE} <= set(fields):
        raise SigningRefused("the director has not signed this PDF: there is nothing to number yet")
    if is_signed(fields.get(AGENCY)):
        raise SigningRefused("the agency has sealed this PDF: its number and date can no longer change")
    for name, text in ((NUMBER, number), (PLACE_DATE, place_date)):
        field = fields[name]
        field[pdf_name("/V")] = generic.TextStringObject(text)
        field[pdf_name("/AP")] = _appearance(writer, rect_of(field), text, size=_size(field), italic=ITALIC[name])
        writer.update_container(field)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _appearance(
    writer: BasePdfFileWriter, rect: Rect, text: str, *, size: int, italic: bool
) -> generic.DictionaryObject:
    x1, y1, x2, y2 = rect
    stream = text_appearance(writer, x2 - x1, y2 - y1, text, size=size, italic=italic)
    return generic.DictionaryObject({pdf_name("/N"): writer.add_object(stream)})


def _size(field: generic.DictionaryObject) -> int:
    found = re.search(r"(\d+(?:\.\d+)?)\s+Tf", str(field.get("/DA", "")))
    return round(float(found.group(1))) if found else 12
