"""Economic events and problem reports: recorded once (a repeated submission is the same
record), listed, and found while they still wait for their cycle."""

from __future__ import annotations

import datetime as dt
import unicodedata

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.clock.deadlines import local_day
from approvals.errors import InvalidInput, Refused
from approvals.models import EconomicEvent, ProblemReport
from approvals.plan.schema import Plan


async def record_event(
    session: AsyncSession, *, name: str, starts_on: dt.date, description: str, by: str, now: dt.datetime
) -> EconomicEvent:
    """An economic event, for which the per-event economy cycle is to be started."""
    event = EconomicEvent(
        name=unicodedata.normalize("NFC", name),
        starts_on=starts_on,
        description=unicodedata.normalize("NFC", description),
        recorded_by=by,
        created_at=now,
    )
    session.add(event)
    await session.flush()
    await audit.append(
        session,
        actor=by,
        action="event.recorded",
        entity="economic_event",
        entity_id=str(event.id),
        data={"name": event.name, "starts_on": starts_on.isoformat()},
    )
    return event


async def record_problem(
    session: AsyncSession, *, plan: Plan, title: str, description: str, unit: str, by: str, now: dt.datetime
) -> ProblemReport:
    """A problem a unit raises with the PPC; its escalation cycle is started from it. Only a unit
    in force on the day may raise one (a district abolished in 2025 may not: its successor does)."""
    if not any(a.id == unit for a in plan.agencies):
        raise InvalidInput(f"unknown unit '{unit}' (use an agency id of the plan)")
    agency = plan.agency(unit)
    if not agency.valid_on(local_day(plan, now)):
        successors = ", ".join(a.id for a in plan.in_force(unit, local_day(plan, now)))
        raise Refused(
            f"unit '{unit}' is not in force on {local_day(plan, now)}"
            + (f" (its duties went to {successors})" if successors else "")
        )
    problem = ProblemReport(
        title=unicodedata.normalize("NFC", title),
        description=unicodedata.normalize("NFC", description),
        unit=unit,
        recorded_by=by,
        created_at=now,
    )
    session.add(problem)
    await session.flush()
    await audit.append(
        session,
        actor=by,
        action="problem.recorded",
        entity="problem_report",
        entity_id=str(problem.id),
        data={"title": problem.title, "unit": unit},
    )
    return problem


async def list_problems(session: AsyncSession, *, limit: int = 100, offset: int = 0) -> list[ProblemReport]:
    return list(
        (
            await session.execute(
                select(ProblemReport).order_by(ProblemReport.created_at.desc()).limit(limit).offset(offset)
            )
        ).scalars()
    )


async def problems_without_cycle(session: AsyncSession, *, since: dt.datetime) -> list[ProblemReport]:
    """Problems recorded since a time whose escalation cycle has not been created yet."""
    return list(
        (
            await session.execute(
                select(ProblemReport)
                .where(ProblemReport.cycle_id.is_(None), ProblemReport.created_at >= since)
                .order_by(ProblemReport.created_at)
            )
        ).scalars()
    )


async def events_without_cycle(session: AsyncSession, *, since: dt.datetime) -> list[EconomicEvent]:
    """Events recorded since a time whose economy cycle has not been created yet."""
    return list(
        (
            await session.execute(
                select(EconomicEvent)
                .where(EconomicEvent.cycle_id.is_(None), EconomicEvent.created_at >= since)
                .order_by(EconomicEvent.created_at)
            )
        ).scalars()
    )


async def list_events(session: AsyncSession, *, limit: int = 100, offset: int = 0) -> list[EconomicEvent]:
    return list(
        (
            await session.execute(
                select(EconomicEvent)
                .order_by(EconomicEvent.starts_on.desc(), EconomicEvent.created_at.desc())
                .limit(limit)
                .offset(offset)
            )
        ).scalars()
    )
