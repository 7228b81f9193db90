"""The cycles besides the annual one: the implementation period's (stage 6) monthly
culture-society cycle and economy cycle per recorded event (a trade fair, a campaign), and
the escalation of a problem to the PPC (stage E, at any time). Each runs its plan stages with
the same chain as the annual cycle."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from prefect import flow, task
from sqlalchemy import update

from approvals.clock import rehearsals
from approvals.clock.deadlines import clock_of
from approvals.config import get_settings
from approvals.errors import InvalidInput, NotFound
from approvals.models import EconomicEvent, ProblemReport
from approvals.plan import load_plan
from approvals.routing import steps
from flows.annual_cycle import CYCLE_KIND as ANNUAL_KIND
from flows.chain import run_chain
from flows.stages import STEP, database

MONTHLY_KIND = "culture_society_monthly"
EVENT_KIND = "economy_event"
PROBLEM_KIND = "problem_escalation"


def month_period(month: str | None) -> tuple[str, dt.date]:
    """'2027-03' and its first day; without a month, this month in the plan's time zone."""
    if month is None:
        today = dt.datetime.now(load_plan(get_settings().plan_file).tz).date()
        return f"{today:%Y-%m}", today.replace(day=1)
    if not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", month):
        raise InvalidInput(f"month {month!r} must be YYYY-MM, e.g. 2027-03")
    year, number = (int(part) for part in month.split("-"))
    return month, dt.date(year, number, 1)


@flow(name="culture-society-cycle", log_prints=True, persist_result=False)
async def culture_society_cycle(month: str | None = None) -> dict:
    """One month's culture-society content: each outlet submits, its head approves.
    Without a month (the monthly schedule), this month."""
    period, starts_on = month_period(month)
    statuses = await run_chain(cycle_kind=MONTHLY_KIND, period=period, starts_on=starts_on)
    return {"month": period, "stages": statuses}


def event_period(event: EconomicEvent) -> str:
    """A cycle period per event: its start date and the start of its id (fits 32 characters)."""
    return f"{event.starts_on:%Y-%m-%d}-{event.id.hex[:8]}"


async def _link_cycle(
    session, record: EconomicEvent | ProblemReport, *, kind: str, period: str, starts_on: dt.date
) -> None:
    """The record's cycle, created once; the record points at it (a re-run finds both). In a
    rehearsal's database it follows the rehearsal's clock."""
    rehearsal = await rehearsals.under_way(session, kind=ANNUAL_KIND)
    if rehearsal is not None:
        plan = load_plan(get_settings().plan_file)
        cycle = await rehearsals.follow(
            session, plan, leading=rehearsal, kind=kind, period=period, starts_on=starts_on, by="system"
        )
    else:
        cycle = await steps.get_or_create_cycle(session, kind=kind, period=period, starts_on=starts_on)
    if record.cycle_id != cycle.id:
        await session.execute(
            update(type(record))
            .where(type(record).id == record.id)
            .values(cycle_id=cycle.id)
            .execution_options(synchronize_session=False)
        )


@task(name="open-event-cycle", **STEP)
async def open_event_cycle(event_id: str) -> tuple[str, dt.date]:
    """The event's cycle, created once and linked to the event (a re-run finds it)."""
    settings = get_settings()
    async with database(settings) as db, db.transaction() as session:
        event = await session.get(EconomicEvent, uuid.UUID(event_id), with_for_update=True)
        if event is None:
            raise NotFound(f"no economic event {event_id}")
        period = event_period(event)  # its day is the coordinator's: a rehearsal's calendar in a rehearsal
        await _link_cycle(session, event, kind=EVENT_KIND, period=period, starts_on=event.starts_on)
        return period, event.starts_on


@flow(name="economy-event-cycle", log_prints=True, persist_result=False)
async def economy_event_cycle(event_id: str) -> dict:
    """The coverage of one economic event recorded by a coordinator: each outlet submits its
    coverage plan, its head approves. Started by the service when the event is recorded."""
    period, starts_on = await open_event_cycle(event_id)
    statuses = await run_chain(cycle_kind=EVENT_KIND, period=period, starts_on=starts_on)
    return {"event": event_id, "period": period, "stages": statuses}


@task(name="open-problem-cycle", **STEP)
async def open_problem_cycle(problem_id: str) -> tuple[str, dt.date, dict]:
    """The problem's cycle, created once and linked to the problem; what the PPC is shown."""
    settings = get_settings()
    async with database(settings) as db, db.transaction() as session:
        problem = await session.get(ProblemReport, uuid.UUID(problem_id), with_for_update=True)
        if problem is None:
            raise NotFound(f"no problem report {problem_id}")
        plan = load_plan(settings.plan_file)
        rehearsal = await rehearsals.under_way(session, kind=ANNUAL_KIND)
        raised = clock_of(plan, rehearsal).dated(problem.created_at) if rehearsal else problem.created_at
        day = raised.astimezone(plan.tz).date()  # in a rehearsal, the day its calendar stood at
        period = f"{day:%Y-%m-%d}-{problem.id.hex[:8]}"
        await _link_cycle(session, problem, kind=PROBLEM_KIND, period=period, starts_on=day)
        return period, day, {"text": f"{problem.title}\n\n{problem.description}", "unit": problem.unit}


@flow(name="problem-escalation", log_prints=True, persist_result=False)
async def problem_escalation(problem_id: str) -> dict:
    """A problem a unit raised, put before the PPC's leadership (stage E): started by the
    service when a coordinator records it."""
    period, starts_on, shown = await open_problem_cycle(problem_id)
    first = plan_stage_ids(PROBLEM_KIND)[0]
    statuses = await run_chain(cycle_kind=PROBLEM_KIND, period=period, starts_on=starts_on, data={first: shown})
    return {"problem": problem_id, "period": period, "stages": statuses}


def plan_stage_ids(cycle_kind: str) -> list[str]:
    return [stage.id for stage in load_plan(get_settings().plan_file).cycle(cycle_kind).stages]
