"""The annual cycle of the plan: the chain of stages in the plan file, in order.

Default chain (plans/lang-son.yaml): 1 the year's orientation, submitted by the press officer
of the agency that orients the press and approved by its director; 2 the Propaganda Board's
guidance, requested (never ordered) and acknowledged by the lead agency, or gone on without at
its due time; 3 the materials, submitted and approved; 4 each outlet's production plan, one
branch per outlet in parallel, with the orientation and the guidance, approved by the outlet's
head then the lead agency; 5 the finance allocation, routed by its amount; 6 the
implementation period (the monthly and per-event cycles run as their own flows); 7 the annual
report of every unit before 30 November, left at its due time; 8 the lead agency's consolidated
report, numbered and sent to the PPC once its director approves it.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow

from approvals.config import get_settings
from approvals.plan import load_plan
from flows.chain import run_chain

CYCLE_KIND = "annual"


def cycle_start(year: int) -> dt.date:
    return load_plan(get_settings().plan_file).cycle(CYCLE_KIND).start_in(year)


def this_year() -> int:
    return dt.datetime.now(load_plan(get_settings().plan_file).tz).year


@flow(name="annual-cycle", log_prints=True, persist_result=False)
async def annual_cycle(year: int | None = None) -> dict:
    """One year of the plan, stage by stage, pausing (with no process) at every human step.
    Without a year (the yearly schedule), this year in the plan's time zone."""
    year = year or this_year()
    statuses = await run_chain(cycle_kind=CYCLE_KIND, period=str(year), starts_on=cycle_start(year))
    if "joined" in statuses:  # another run carries this year (the schedule's and one started by hand)
        return {"year": str(year), **statuses}
    last = next(reversed(statuses), None)  # none when the cycle was cancelled before it began
    return {
        "year": str(year),
        "stages": statuses,
        "stage": last,
        "status": statuses[last] if last is not None else "cancelled",
    }
