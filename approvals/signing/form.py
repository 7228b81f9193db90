"""The report's form: the four fields its signing adds, by name, and how to find them in a PDF.

- `director` and `agency`: the two signature fields (Decree 30/2020, Appendix I, II.7 and II.8);
- `number` and `place_date`: the register's entries, text fields the director's revision makes
  and the register fills (`register`)."""

from __future__ import annotations

import io

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError

from approvals.signing.errors import NotASignedDocument

DIRECTOR = "director"
AGENCY = "agency"
NUMBER = "number"
PLACE_DATE = "place_date"
READABLE = {
    DIRECTOR: "Chữ ký số của người có thẩm quyền",
    AGENCY: "Chữ ký số của cơ quan, tổ chức",
    NUMBER: "Số, ký hiệu văn bản",
    PLACE_DATE: "Địa danh và thời gian ban hành văn bản",
}

Rect = tuple[int, int, int, int]  # left, bottom, right, top, in PDF points


def writer_for(pdf: bytes) -> IncrementalPdfFileWriter:
    """An incremental writer on a PDF (every change is a new revision: the signatures stay)."""
    try:
        return IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    except (PdfError, ValueError, IndexError, KeyError) as error:
        raise NotASignedDocument(f"not a readable PDF: {error}") from error


def fields_of(root: generic.DictionaryObject) -> dict[str, generic.DictionaryObject]:
    """The form's top-level fields by name, in a document's root (of its latest revision or of a
    past one): the report's fields are all at the top level."""
    try:
        refs = root["/AcroForm"]["/Fields"]
    except KeyError:
        return {}
    found: dict[str, generic.DictionaryObject] = {}
    for ref in refs:
        field = ref.get_object()
        if "/T" in field:
            found[str(field["/T"])] = field
    return found


def is_signed(field: generic.DictionaryObject | None) -> bool:
    return field is not None and field.get("/FT") == "/Sig" and field.get("/V") is not None


def rect_of(field: generic.DictionaryObject) -> Rect:
    """A field's rectangle (its own, or its one widget's), normalised: left, bottom, right, top."""
    widget = field["/Kids"][0].get_object() if "/Rect" not in field and "/Kids" in field else field
    x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
    return round(min(x1, x2)), round(min(y1, y2)), round(max(x1, x2)), round(max(y1, y2))
