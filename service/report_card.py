"""The units' annual reports of a year (stage 7), read against the report step's own dates: the
cycle's clock, so a shifted or rehearsed cycle is shown on its own calendar and no unit is past
due before its step has opened. A summary on the dashboard; every unit one click away on
`/reports/annual/{year}/units`."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select

from approvals import consolidated
from approvals.clock.deadlines import clock_of, days_late, days_left, planned_due, planned_opening
from approvals.i18n import local_time
from approvals.models import Cycle
from approvals.plan import Plan
from approvals.statuses import RequestStatus
from approvals.wording.presentation import agency_name
from service.api.present import NOT_STARTED  # the step is open and nothing of the unit's has started

NOT_OPEN = "not_open"  # the step opens on its own date, still ahead


@dataclass(frozen=True)
class ReportRow:
    agency: str
    status: str  # not_open, not_started, awaiting_submission, waiting, overdue, done, rejected, ...
    request_id: str
    days: int  # days left, or days late


async def annual_cycle(session, plan: Plan, year: int) -> Cycle:
    """The year's annual cycle as started (shifted, kept or rehearsed), or as the plan would start
    it (not stored) when it has not been."""
    kind = consolidated.ANNUAL
    cycle = (await session.execute(select(Cycle).where(Cycle.kind == kind, Cycle.period == str(year)))).scalar()
    return cycle or Cycle(kind=kind, period=str(year), starts_on=plan.cycle(kind).start_in(year), shift_days=0)


def _status(request, now: dt.datetime, step_open: bool) -> str:
    if request is None:
        return NOT_STARTED if step_open else NOT_OPEN
    if RequestStatus(request.status).open:
        if request.due_at < now:
            return "overdue"
        return "waiting" if request.status == RequestStatus.pending.value else request.status
    return "done" if request.status == RequestStatus.approved.value else request.status


async def report_card(session, plan: Plan, year: int, now: dt.datetime, language: str) -> dict | None:
    """Every unit's annual report of `year`, with the step's dates as the cycle's calendar names
    them; None when the plan has no annual report."""
    stage = consolidated.report_stage(plan)
    if stage is None:
        return None
    tz = plan.tz
    cycle = await annual_cycle(session, plan, year)
    clock = clock_of(plan, cycle)
    deadline = planned_due(plan, stage, cycle)
    opens = planned_opening(plan, stage, cycle)
    today = clock.dated(now)
    on = min(today, clock.dated(deadline)).astimezone(tz).date()
    latest = await consolidated.latest_by_unit(session, plan, year, on)
    step_open = bool(latest) or opens is None or now >= opens
    owed = consolidated.report_units(plan, on)
    rows = []
    for unit in owed + sorted(set(latest) - set(owed)):
        request = latest.get(unit)
        status = _status(request, now, step_open)
        due = clock.dated(request.due_at if request else deadline)
        days = days_late(due, today, tz) if today > due else days_left(due, today, tz)
        rows.append(ReportRow(agency_name(plan, unit, language), status, str(request.id) if request else "", days))
    return {
        "year": year,
        "stage": f"{stage.number}. {stage.name.get(language)}",
        "deadline": local_time(clock.dated(deadline), tz, language),
        "opens": f"{clock.dated(opens).astimezone(tz):%d/%m/%Y}" if opens is not None else "",  # a day: at 00:00
        "open": step_open,
        "passed": now > deadline,
        "counts": sorted(Counter(row.status for row in rows).items()),
        "units": rows,
        "clock": clock,
        "document": plan.report is not None,
    }
