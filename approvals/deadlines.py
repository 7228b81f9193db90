"""Due times: plan deadlines are local calendar days; they are stored as UTC instants."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from approvals.models import Cycle
from approvals.plan.schema import Plan
from approvals.plan.stages import Due, Stage


def end_of_local_day(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The last microsecond of a local calendar day, as a UTC instant."""
    return dt.datetime.combine(day, dt.time.max, tzinfo=tz).astimezone(dt.UTC)


def due_at(due: Due, *, cycle_start: dt.date, tz: ZoneInfo) -> dt.datetime:
    """Offsets count days from the cycle's start; a fixed day falls in the cycle's year.

    "Before 30/11" (inclusive: false) is due at the end of 29/11 local time.
    """
    if due.offset_days is not None:
        return end_of_local_day(cycle_start + dt.timedelta(days=due.offset_days), tz)
    day = dt.date(cycle_start.year, due.month, due.day)
    if not due.inclusive:
        day -= dt.timedelta(days=1)
    return end_of_local_day(day, tz)


def reminder_times(stage, request) -> list[dt.datetime]:
    """When a step's reminders fall: the stage's days before its due time, those after the step
    opened only (a step opened late, with its minimum notice, is not reminded at once for
    reminders that belonged to days before it existed)."""
    return sorted(
        moment
        for d in set(stage.reminders_before_days)
        if (moment := request.due_at - dt.timedelta(days=d)) > request.created_at
    )


def reminders_passed(stage, request, now: dt.datetime) -> int:
    """How many of the step's reminders have fallen by `now`."""
    return sum(1 for moment in reminder_times(stage, request) if moment <= now)


def local_day(plan: Plan, now: dt.datetime) -> dt.date:
    return now.astimezone(plan.tz).date()


def planned_due(plan: Plan, stage: Stage, cycle: Cycle) -> dt.datetime:
    """The stage's due time in the cycle's calendar, moved as the cycle's deadlines were (a late start)."""
    return due_at(stage.due, cycle_start=cycle.starts_on, tz=plan.tz) + dt.timedelta(days=cycle.shift_days)


def step_due(plan: Plan, stage: Stage, cycle: Cycle, now: dt.datetime) -> dt.datetime:
    """When a step opened now falls due: as planned, but never sooner than the plan's minimum
    notice after it opens (a cycle started late, or a stage reached late, is not escalated or
    expired by the sweep just because its planned date has passed)."""
    earliest = end_of_local_day(local_day(plan, now) + dt.timedelta(days=plan.plan.min_notice_days), plan.tz)
    return max(planned_due(plan, stage, cycle), earliest)
