"""A rehearsal: a cycle of the shipped plan run with its calendar compressed (a year in about 30
minutes), so that a province's IT team and coordinators can walk a whole year, and train
officials on it, before the real cycle starts.

Its compressed calendar is a schedule of the cycle, like a late start's shift
(`approvals.clock.deadlines.CycleClock`): the sweep, the pages, the dashboard and the emails all read
the same dates, and nothing patches the clock. A rehearsal is kept apart from production: it is
refused with `KEHOACH_ENVIRONMENT=production`, and in a database that holds any cycle that is
not a rehearsal (it belongs in a data folder and database of its own).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.clock.deadlines import clock_of, start_of_local_day
from approvals.config import Environment
from approvals.errors import Refused
from approvals.models import Cycle
from approvals.plan.schema import Plan

YEAR_SECONDS = 365 * 86_400
DEFAULT_MINUTES = 30.0  # a year in half an hour: a stage's reminders minutes apart, readable as they come
FASTEST_MINUTES = 1.0  # faster, a planned day would last under 0.2 s: the sweep could not keep up


class RehearsalRefused(Refused):
    """A rehearsal would mix with real cycles (production, or a database that holds them)."""


def speed_for(minutes: float) -> float:
    """The pace that runs a planned year in `minutes` of wall clock."""
    if not FASTEST_MINUTES <= minutes <= YEAR_SECONDS / 60:
        raise RehearsalRefused(
            f"a rehearsed year lasts between {FASTEST_MINUTES:g} minute and a real year, not {minutes:g} minutes"
        )
    return YEAR_SECONDS / (minutes * 60)


async def real_cycles(session: AsyncSession, limit: int = 3) -> list[Cycle]:
    """Some of the cycles in this database that are not rehearsals (none: it may host one)."""
    return list((await session.execute(select(Cycle).where(Cycle.rehearsal_speed.is_(None)).limit(limit))).scalars())


def refuse_here(environment: Environment) -> None:
    """RehearsalRefused in production."""
    if environment is Environment.production:
        raise RehearsalRefused(
            "a rehearsal is refused with KEHOACH_ENVIRONMENT=production: give it its own data folder"
        )


async def refuse_real_cycles(session: AsyncSession) -> None:
    """RehearsalRefused where this database holds cycles that are not rehearsals."""
    real = await real_cycles(session)
    if real:
        named = ", ".join(f"{c.kind}/{c.period}" for c in real)
        raise RehearsalRefused(
            f"this database holds cycles that are not rehearsals ({named}): a rehearsal needs a database of its own"
        )


async def begin(
    session: AsyncSession,
    plan: Plan,
    *,
    kind: str,
    year: int,
    minutes: float,
    environment: Environment,
    by: str,
    now: dt.datetime,
) -> Cycle:
    """Make the year's cycle of `kind` a rehearsal whose first planned day begins now, or find the
    rehearsal already begun (a second `kehoach rehearse` joins it). Refused in production, and
    in a database that holds real cycles."""
    refuse_here(environment)
    speed = speed_for(minutes)
    await refuse_real_cycles(session)
    period = str(year)
    cycle = (
        await session.execute(select(Cycle).where(Cycle.kind == kind, Cycle.period == period).with_for_update())
    ).scalar()
    if cycle is not None:
        return cycle
    cycle = Cycle(
        kind=kind, period=period, starts_on=plan.cycle(kind).start_in(year), rehearsal_speed=speed, rehearsal_began=now
    )
    data = {"speed": speed, "minutes_per_year": minutes, "began": now.isoformat(), "starts_on": str(cycle.starts_on)}
    return await _added_once(session, cycle, by=by, data=data)


async def _added_once(session: AsyncSession, cycle: Cycle, *, by: str, data: dict[str, Any]) -> Cycle:
    """The rehearsal's cycle added and audited, or the one another process added meanwhile (two
    `kehoach rehearse` at once: one begins it, the other joins)."""
    try:
        async with session.begin_nested():
            session.add(cycle)
    except IntegrityError:
        found = select(Cycle).where(Cycle.kind == cycle.kind, Cycle.period == cycle.period)
        return (await session.execute(found)).scalar_one()
    await audit.append(
        session, actor=by, action="cycle.rehearsal_began", entity="cycle", entity_id=str(cycle.id), data=data
    )
    return cycle


async def follow(
    session: AsyncSession, plan: Plan, *, leading: Cycle, kind: str, period: str, starts_on: dt.date, by: str
) -> Cycle:
    """A cycle that runs inside a rehearsal, such as a month's culture-society cycle: on the
    rehearsal's compressed clock, its first planned day falling where the rehearsal's calendar
    puts that day. Found, not made again, when it exists (a second start joins it)."""
    if not leading.rehearsal_speed or leading.rehearsal_began is None:
        raise RehearsalRefused(f"{leading.kind}/{leading.period} is not a rehearsal: nothing can follow its clock")
    began = clock_of(plan, leading).wall(start_of_local_day(starts_on, plan.tz), not_before=True)
    found = select(Cycle).where(Cycle.kind == kind, Cycle.period == period)
    cycle = (await session.execute(found)).scalar()
    if cycle is not None:
        if not cycle.rehearsal_speed:
            raise RehearsalRefused(f"{kind}/{period} exists and is not a rehearsal")
        return cycle
    cycle = Cycle(
        kind=kind, period=period, starts_on=starts_on, rehearsal_speed=leading.rehearsal_speed, rehearsal_began=began
    )
    data = {"speed": cycle.rehearsal_speed, "began": began.isoformat(), "follows": str(leading.id)}
    return await _added_once(session, cycle, by=by, data=data)


async def under_way(session: AsyncSession, *, kind: str) -> Cycle | None:
    """The rehearsal this database runs (its latest begun cycle of `kind`, the annual one), or
    None in a database of real cycles. A cycle made in a rehearsal's database, for an event or a
    problem recorded during it, follows its clock (`follow`)."""
    found = (
        select(Cycle)
        .where(Cycle.kind == kind, Cycle.rehearsal_speed.is_not(None))
        .order_by(Cycle.rehearsal_began.desc())
        .limit(1)
    )
    return (await session.execute(found)).scalar()
