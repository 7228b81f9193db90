"""The email of the issued report to each recipient agency, as data: in Vietnamese (the
province's official language), keyed by cycle and agency, with a download link of the agency's
own in place of the files when they are too large to attach (`download`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from approvals.models import Cycle
from approvals.plan import Plan
from approvals.wording.message_types import PlainMessage
from approvals.wording.presentation import cycle_context

if TYPE_CHECKING:  # types only: approvals.consolidated reads the wording, not the reverse
    from approvals.consolidated.document import ReportDocument
    from approvals.consolidated.units import AnnualReport


def report_issued_messages(
    plan: Plan,
    cycle: Cycle | None,
    *,
    cycle_id: uuid.UUID | str,
    report: AnnualReport,
    document: ReportDocument,
    download: Callable[[str], str] | None,
) -> list[PlainMessage]:
    """One message per recipient agency with a mailbox (`plan check` refuses one without);
    `download(agency_id)` gives the link's text where the files are not attached."""
    context = {
        "rehearsal": cycle_context(plan, cycle, language="vi")["rehearsal"] if cycle else "",
        "issuer": report.issuer.name.vi,
        "number": document.number.removeprefix("Số: "),
        "report": document.subject[0].lower() + document.subject[1:],
        "year": str(report.year),
        "signer": document.signer_name or document.signer_title,
        "at": document.place_date,
    }
    return [
        PlainMessage(
            kind="report_issued",
            key=f"report_issued:{cycle_id}:{agency.id}",
            language="vi",
            name=agency.name.vi,
            email=str(agency.email),
            context={**context, "name": agency.name.vi, "download": download(agency.id) if download else ""},
        )
        for agency in report.recipients
        if agency.email
    ]
