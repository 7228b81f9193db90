"""A rehearsal is kept apart from production (issue 22): refused with
KEHOACH_ENVIRONMENT=production and in a database that holds real cycles, and nothing is
written when it is refused; begun twice, it is one rehearsal."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select

from approvals.clock import rehearsals
from approvals.clock.deadlines import clock_of, planned_due
from approvals.config import PACKAGED_PLAN, Environment
from approvals.db import utcnow
from approvals.models import AuditEvent, Cycle
from approvals.plan import load_plan
from approvals.routing import steps

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


async def _follow(db, leading, month: str):
    async with db.transaction() as session:
        return await rehearsals.follow(
            session,
            PLAN,
            leading=leading,
            kind="culture_society_monthly",
            period=month,
            starts_on=dt.date(int(month[:4]), int(month[5:]), 1),
            by="test",
        )


async def test_a_months_cycle_follows_the_rehearsals_clock(private_database):
    """A month's culture-society cycle in a rehearsal falls on the rehearsal's calendar: its
    first day and its due day (25 days on) stand where the annual cycle's clock puts them."""
    annual = await _begin(private_database, minutes=30.0, year=2027)
    march = await _follow(private_database, annual, "2027-03")
    assert march.rehearsal_speed == annual.rehearsal_speed and march.starts_on == dt.date(2027, 3, 1)
    first = dt.datetime(2027, 3, 1, tzinfo=PLAN.tz)
    assert abs(clock_of(PLAN, march).wall(first) - clock_of(PLAN, annual).wall(first)) <= dt.timedelta(microseconds=1)
    stage = PLAN.stage("culture_society_monthly", "monthly_production")
    due = clock_of(PLAN, march).dated(planned_due(PLAN, stage, march)).astimezone(PLAN.tz)
    assert due.date() == dt.date(2027, 3, 26)  # 25 days on, on the rehearsal's calendar
    assert (await _follow(private_database, annual, "2027-03")).id == march.id  # started twice: joined


async def test_only_a_rehearsal_can_be_followed_and_a_real_month_is_never_taken_over(private_database):
    async with private_database.transaction() as session:
        real = await steps.get_or_create_cycle(session, kind="annual", period="2031", starts_on=dt.date(2031, 1, 15))
        await steps.get_or_create_cycle(
            session, kind="culture_society_monthly", period="2031-04", starts_on=dt.date(2031, 4, 1)
        )
    with pytest.raises(rehearsals.RehearsalRefused, match="is not a rehearsal"):
        await _follow(private_database, real, "2031-03")
    real.rehearsal_speed, real.rehearsal_began = 17_520.0, utcnow()  # as if it were one (never stored)
    with pytest.raises(rehearsals.RehearsalRefused, match="2031-04 exists and is not a rehearsal"):
        await _follow(private_database, real, "2031-04")


async def test_a_rehearsals_database_knows_the_rehearsal_under_way(private_database):
    """What a cycle recorded during a rehearsal (an event's, a problem's) follows; none in a
    database of real cycles."""
    async with private_database.sessions() as session:
        assert await rehearsals.under_way(session, kind="annual") is None
    annual = await _begin(private_database, year=2028)
    await _follow(private_database, annual, "2028-02")
    async with private_database.sessions() as session:
        assert (await rehearsals.under_way(session, kind="annual")).id == annual.id
