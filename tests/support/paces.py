"""The pace a test's cycle runs at: as planned, or rehearsed (its year compressed into 30 minutes
of wall clock). The wall instants are worked out here, not by the code under test
(`approvals.clock.deadlines.CycleClock`), so a test that travels to them checks the clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
YEAR_IN_30_MINUTES = 365 * 86_400 / 1_800
REHEARSAL_BEGAN = dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC)  # the wall instant the cycle's first day began


@dataclass(frozen=True)
class Pace:
    name: str
    speed: float = 1.0  # planned seconds per wall second

    @property
    def rehearsed(self) -> bool:
        return self.speed != 1.0

    def mark(self, cycle, starts_on: dt.date) -> None:
        """Make a cycle (before its run starts) run at this pace."""
        if self.rehearsed:
            cycle.rehearsal_speed, cycle.rehearsal_began = self.speed, REHEARSAL_BEGAN

    def wall(self, planned: dt.datetime, starts_on: dt.date) -> dt.datetime:
        """The wall instant a planned one falls at: a rehearsal's planned day lasts 86,400 / speed s."""
        if not self.rehearsed:
            return planned
        first = dt.datetime.combine(starts_on, dt.time.min, tzinfo=TZ)
        return REHEARSAL_BEGAN + (planned - first) / self.speed

    def sweep_at(self, planned: dt.datetime, starts_on: dt.date, index: int) -> dt.datetime:
        """When a test's `index`-th sweep runs for a planned moment: at it, or in a rehearsal
        `index` milliseconds (17 planned seconds each) after. A rehearsal's instants are rounded
        to the microsecond, so an expiry (the escalating sweep's moment plus the grace) may fall a
        microsecond after the moment it stands for; each later sweep looks a little later still."""
        late = dt.timedelta(milliseconds=index) if self.rehearsed else dt.timedelta(0)
        return self.wall(planned, starts_on) + late


AS_PLANNED = Pace("as_planned")
REHEARSED = Pace("rehearsed", YEAR_IN_30_MINUTES)
