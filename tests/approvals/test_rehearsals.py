"""A rehearsal is kept apart from production (issue 22): refused with
KEHOACH_ENVIRONMENT=production and in a database that holds real cycles, and nothing is
written when it is refused; begun twice, it is one rehearsal."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select

from approvals import rehearsals, steps
from approvals.config import PACKAGED_PLAN, Environment
from approvals.db import utcnow
from approvals.deadlines import clock_of, planned_due
from approvals.models import AuditEvent, Cycle
from approvals.plan import load_plan

PLAN = load_plan(PACKAGED_PLAN)


async def _begin(db, *, environment=Environment.development, minutes=30.0, year=2026):
    async with db.transaction() as session:
        return await rehearsals.begin(
            session, PLAN, kind="annual", year=year, minutes=minutes, environment=environment, by="test", now=utcnow()
        )


async def _counts(db) -> tuple[int, int]:
    async with db.sessions() as session:
        cycles = (await session.execute(select(func.count()).select_from(Cycle))).scalar_one()
        audited = (await session.execute(select(func.count()).select_from(AuditEvent))).scalar_one()
    return cycles, audited


async def test_a_rehearsal_compresses_the_shipped_plans_year_into_its_minutes(private_database):
    began = utcnow()
    cycle = await _begin(private_database, minutes=30.0)
    assert cycle.rehearsal_began >= began and cycle.rehearsal_speed == pytest.approx(17_520.0)
    report = PLAN.stage("annual", "consolidated_report")
    due = planned_due(PLAN, report, cycle)  # before 15 December: the end of the 14th, 334 planned days in
    assert dt.timedelta(minutes=27) < due - cycle.rehearsal_began < dt.timedelta(minutes=28)
    assert clock_of(PLAN, cycle).dated(due).astimezone(PLAN.tz).date() == dt.date(2026, 12, 14)
    assert (await _begin(private_database)).id == cycle.id  # begun again: the same rehearsal, joined


async def test_a_rehearsal_is_refused_in_production_and_changes_nothing(private_database):
    before = await _counts(private_database)
    with pytest.raises(rehearsals.RehearsalRefused, match="KEHOACH_ENVIRONMENT=production"):
        await _begin(private_database, environment=Environment.production)
    assert await _counts(private_database) == before


async def test_a_rehearsal_is_refused_against_a_database_that_holds_real_cycles(private_database):
    async with private_database.transaction() as session:
        await steps.get_or_create_cycle(session, kind="annual", period="2026", starts_on=dt.date(2026, 1, 15))
    before = await _counts(private_database)
    with pytest.raises(rehearsals.RehearsalRefused, match=r"not rehearsals \(annual/2026\)"):
        await _begin(private_database, year=2027)
    assert await _counts(private_database) == before


@pytest.mark.parametrize("minutes", [0.5, 0.0, -3.0, 365 * 24 * 60 + 1])
async def test_a_pace_outside_a_minute_to_a_year_is_refused(private_database, minutes):
    with pytest.raises(rehearsals.RehearsalRefused, match="between 1 minute and a real year"):
        await _begin(private_database, minutes=minutes)
    assert await _counts(private_database) == (0, 0)


async def test_two_rehearsals_begun_at_once_are_one(private_database):
    first, second = await asyncio.gather(_begin(private_database), _begin(private_database))
    assert first.id == second.id
    async with private_database.sessions() as session:
        began = (
            await session.execute(select(func.count()).where(AuditEvent.action == "cycle.rehearsal_began"))
        ).scalar_one()
    assert began == 1
