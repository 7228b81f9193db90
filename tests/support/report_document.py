"""The consolidated report of 2026 on the shipped plan, as `consolidated.document` writes it,
without a database: every unit the annual-report stage asks (89), a third of them having sent
their report, the rest silent; issued on 5 December by the director in office that day."""

from __future__ import annotations

import datetime as dt
import functools

from approvals import consolidated
from approvals.config import PACKAGED_PLAN
from approvals.consolidated import AnnualReport, ReportDocument, UnitEntry, UnitStatus
from approvals.plan import load_plan
from approvals.plan.schema import Plan

ISSUED_ON = dt.date(2026, 12, 5)


@functools.lru_cache(maxsize=1)
def plan() -> Plan:
    return load_plan(PACKAGED_PLAN)


def annual_report() -> AnnualReport:
    shipped = plan()
    on = dt.date(2026, 11, 29)
    units = [
        UnitEntry(
            unit=unit,
            name=shipped.agency(unit).name.vi,
            status=UnitStatus.approved if i % 3 == 0 else UnitStatus.not_submitted,
            submitted_at=dt.datetime(2026, 11, 12, 9, tzinfo=shipped.tz) if i % 3 == 0 else None,
            text="Đã đăng 124 tin, bài về phát triển bền vững.\nTổ chức 3 hội nghị đối thoại." if i % 3 == 0 else "",
        )
        for i, unit in enumerate(consolidated.report_units(shipped, on))
    ]
    deadline = dt.datetime(2026, 11, 29, 17, tzinfo=shipped.tz)
    snapshot = {"year": 2026, "on": on.isoformat(), "deadline": deadline.isoformat(), "units": []}
    parties = consolidated.from_snapshot(shipped, snapshot, issued_on=ISSUED_ON)
    return AnnualReport(2026, on, deadline, parties.issuer, parties.signer, parties.recipients, units)


def report_document(*, number: int | None = None) -> ReportDocument:
    """The report as the run writes it: a draft without a number, else numbered."""
    return consolidated.document(plan(), annual_report(), summary="Đánh giá chung.", issued_on=ISSUED_ON, number=number)
