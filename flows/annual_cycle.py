"""The annual cycle of the plan. Stage 1 (the lead agency's orientation, approved by
its director) runs today; the later stages of the plan file follow in later issues."""

from __future__ import annotations

import datetime as dt

from prefect import flow
from prefect.runtime import flow_run

from approvals.config import get_settings
from approvals.plan import load_plan
from flows.stages import (
    open_approval,
    record_stage,
    send_cycle_digest,
    wait_for_decision,
)

CYCLE_KIND = "annual"


def cycle_start(year: int) -> dt.date:
    plan = load_plan(get_settings().plan_file)
    starts_on = plan.cycle(CYCLE_KIND).starts_on or "01-01"
    month, day = (int(x) for x in starts_on.split("-"))
    return dt.date(year, month, day)


def this_year() -> int:
    return dt.datetime.now(get_settings().tz).year


@flow(name="annual-cycle", log_prints=True, persist_result=True)
async def annual_cycle(year: int | None = None) -> dict[str, str]:
    """One year of the plan: direction by the lead agency, approved by its director.
    Without a year (the yearly schedule), this year in Asia/Ho_Chi_Minh."""
    year = year or this_year()
    stage_id = "dic_direction"
    request_id = await open_approval(
        cycle_kind=CYCLE_KIND, period=str(year), starts_on=cycle_start(year), stage_id=stage_id,
        waiter_ref=str(flow_run.id),
    )
    await send_cycle_digest(cycle_kind=CYCLE_KIND, period=str(year), event="started")
    settled_id = await wait_for_decision(request_id)
    status = await record_stage(settled_id)
    await send_cycle_digest(cycle_kind=CYCLE_KIND, period=str(year), event="finished")
    return {"year": str(year), "stage": stage_id, "status": status, "request_id": settled_id}
