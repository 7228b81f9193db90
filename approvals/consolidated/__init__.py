"""The lead agency's consolidated annual report, in one package:

- `units`: what every unit asked at the annual-report stage sent (or did not), gathered from the
  database, and who issues, signs and receives the report;
- `document`: its words and layout (Decree 30/2020/NĐ-CP; `../shared/docs/report-format.md`);
- `files`: the document written as DOCX and PDF (with a font that has every Vietnamese glyph);
- `issuing`: numbered in the agency's register, written, sent and recorded, once per cycle.

The names the rest of the code uses are also here (`consolidated.gather`, ...).
"""

from __future__ import annotations

from approvals.consolidated.document import ReportDocument, default_summary, document, symbol_of
from approvals.consolidated.files import DOCX_TYPE, PDF_TYPE, report_files, to_docx, to_pdf
from approvals.consolidated.issuing import Issued, issue, next_number
from approvals.consolidated.units import (
    ANNUAL,
    REPORT_STAGE,
    AnnualReport,
    UnitEntry,
    UnitStatus,
    from_snapshot,
    gather,
    latest_by_unit,
    report_stage,
    report_units,
    snapshot,
)

__all__ = [
    "ANNUAL",
    "DOCX_TYPE",
    "PDF_TYPE",
    "REPORT_STAGE",
    "AnnualReport",
    "Issued",
    "ReportDocument",
    "UnitEntry",
    "UnitStatus",
    "default_summary",
    "document",
    "from_snapshot",
    "gather",
    "issue",
    "latest_by_unit",
    "next_number",
    "report_files",
    "report_stage",
    "report_units",
    "snapshot",
    "symbol_of",
    "to_docx",
    "to_pdf",
]
