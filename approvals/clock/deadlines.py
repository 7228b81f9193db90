"""A cycle's dates: plan deadlines are local calendar days, stored as UTC instants on the wall
clock. How a cycle's planned dates fall on the wall clock is its `CycleClock`: as planned, moved
by the days a late start shifted them, or compressed for a rehearsal (a year in minutes). Every
date the sweep, the pages and the emails read goes through it: nothing patches the clock."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from approvals.models import ApprovalRequest, Cycle
from approvals.plan.schema import Plan
from approvals.plan.stages import Due, Stage


def end_of_local_day(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The last microsecond of a local calendar day, as a UTC instant."""
    return dt.datetime.combine(day, dt.time.max, tzinfo=tz).astimezone(dt.UTC)


def start_of_local_day(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz).astimezone(dt.UTC)


def due_at(due: Due, *, cycle_start: dt.date, tz: ZoneInfo) -> dt.datetime:
    """Offsets count days from the cycle's start; a fixed day falls in the cycle's year.

    "Before 30/11" (inclusive: false) is due at the end of 29/11 local time.
    """
    if due.offset_days is not None:
        return end_of_local_day(cycle_start + dt.timedelta(days=due.offset_days), tz)
    assert due.month is not None and due.day is not None, "a due date is an offset, or a month and day (Due)"
    day = dt.date(cycle_start.year, due.month, due.day)
    if not due.inclusive:
        day -= dt.timedelta(days=1)
    return end_of_local_day(day, tz)


def local_day(plan: Plan, now: dt.datetime) -> dt.date:
    return now.astimezone(plan.tz).date()


@dataclass(frozen=True)
class CycleClock:
    """Where a cycle's planned instants fall on the wall clock.

    A cycle run as planned, or shifted whole days for a late start, keeps the plan's pace:
    `wall(t) = t + shift`. A rehearsal runs `speed` times faster from the moment it began:
    its cycle's first planned instant (the start day's local midnight) falls at `began`, and
    a planned day lasts 86,400 / speed wall seconds."""

    shift: dt.timedelta = dt.timedelta(0)
    speed: float = 1.0
    start: dt.datetime | None = None  # a rehearsal's first planned instant (UTC)
    began: dt.datetime | None = None  # the wall instant it falls at

    @property
    def rehearsal(self) -> bool:
        return self.began is not None

    def wall(self, planned: dt.datetime, *, not_before: bool = False) -> dt.datetime:
        """The wall instant of a planned one. A rehearsal's wall clock is coarser than its
        calendar (a wall microsecond is `speed` planned ones), so its instants are rounded: down,
        so that a due time falls no later than planned (and is dated on its own day), or with
        `not_before` up, so that an opening falls no sooner (and is dated on its own day too)."""
        if self.began is None or self.start is None:
            return planned + self.shift
        exact = _microseconds(planned - self.start) / self.speed
        return self.began + dt.timedelta(microseconds=math.ceil(exact) if not_before else math.floor(exact))

    def planned(self, wall: dt.datetime) -> dt.datetime:
        """The planned instant a wall one stands for."""
        if self.began is None or self.start is None:
            return wall - self.shift
        planned = round(_microseconds(wall - self.began) * self.speed)
        # Long after (or before) a rehearsal its calendar means nothing: held within a century,
        # so that a page read years later shows a date rather than failing.
        return self.start + dt.timedelta(microseconds=max(-CENTURY, min(planned, CENTURY)))

    def dated(self, wall: dt.datetime) -> dt.datetime:
        """A wall instant as the cycle's own calendar dates it, for pages, emails and the audit
        log: a rehearsal's compressed year names its own days (15 January to 15 December); any
        other cycle's are the wall clock's (a shifted cycle's deadlines really moved)."""
        return self.planned(wall) if self.rehearsal else wall

    def days(self, count: float) -> dt.timedelta:
        """A span of planned days on the wall clock (a reminder's lead, an escalation's grace)."""
        return dt.timedelta(microseconds=math.floor(count * 86_400_000_000 / self.speed))


CENTURY = 100 * 365 * 86_400_000_000  # microseconds


def _microseconds(span: dt.timedelta) -> int:
    return (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds


def clock_of(plan: Plan, cycle: Cycle) -> CycleClock:
    shift = dt.timedelta(days=cycle.shift_days or 0)
    if not cycle.rehearsal_speed or cycle.rehearsal_began is None:
        return CycleClock(shift=shift)
    return CycleClock(
        speed=cycle.rehearsal_speed, start=start_of_local_day(cycle.starts_on, plan.tz), began=cycle.rehearsal_began
    )


def days_late(due: dt.datetime, now: dt.datetime, tz: ZoneInfo) -> int:
    """Calendar days since the due day (due times are ends of local days): at least 1 once passed."""
    return max((now.astimezone(tz).date() - due.astimezone(tz).date()).days, 1)


def days_left(due: dt.datetime, now: dt.datetime, tz: ZoneInfo) -> int:
    """Calendar days until the due day; 0 on the day itself."""
    return max((due.astimezone(tz).date() - now.astimezone(tz).date()).days, 0)


def reminder_times(stage: Stage, request: ApprovalRequest, clock: CycleClock) -> list[dt.datetime]:
    """When a step's reminders fall: the stage's days before its due time, those after the step
    opened only (a step opened late, with its minimum notice, is not reminded at once for
    reminders that belonged to days before it existed)."""
    return sorted(
        moment
        for d in set(stage.reminders_before_days)
        if (moment := request.due_at - clock.days(d)) > request.created_at
    )


def reminders_passed(stage: Stage, request: ApprovalRequest, now: dt.datetime, clock: CycleClock) -> int:
    """How many of the step's reminders have fallen by `now`."""
    return sum(1 for moment in reminder_times(stage, request, clock) if moment <= now)


def planned_due(plan: Plan, stage: Stage, cycle: Cycle) -> dt.datetime:
    """The stage's due time in the cycle's calendar, on the cycle's clock (shifted, rehearsed)."""
    return clock_of(plan, cycle).wall(due_at(stage.due, cycle_start=cycle.starts_on, tz=plan.tz))


def planned_opening(plan: Plan, stage: Stage, cycle: Cycle) -> dt.datetime | None:
    """When a stage that opens on its own date (the annual report, 1 October) opens: the start
    of that local day in the cycle's year, on the cycle's clock. None: it opens when reached."""
    if stage.opens_on is None:
        return None
    day = dt.date(cycle.starts_on.year, stage.opens_on.month, stage.opens_on.day)
    return clock_of(plan, cycle).wall(start_of_local_day(day, plan.tz), not_before=True)


def step_due(plan: Plan, stage: Stage, cycle: Cycle, now: dt.datetime) -> dt.datetime:
    """When a step opened now falls due: as planned, but never sooner than the plan's minimum
    notice after it opens (a cycle started late, or a stage reached late, is not escalated or
    expired by the sweep just because its planned date has passed). The notice counts the
    cycle's own days: a rehearsal's are minutes."""
    clock = clock_of(plan, cycle)
    today = local_day(plan, clock.planned(now))
    earliest = clock.wall(end_of_local_day(today + dt.timedelta(days=plan.plan.min_notice_days), plan.tz))
    return max(planned_due(plan, stage, cycle), earliest)
