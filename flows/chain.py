"""A cycle's chain of stages, in the plan file's order: what every cycle flow runs."""

from __future__ import annotations

import datetime as dt

from prefect.runtime import flow_run

from approvals.config import get_settings
from approvals.models import StageStatus
from approvals.plan import load_plan
from approvals.plan.schema import StageKind
from flows.stages import (
    any_approved,
    mark_stage,
    open_stage,
    record_stage,
    send_cycle_digest,
    stopped_before,
    wait_for_all,
)


async def run_chain(*, cycle_kind: str, period: str, starts_on: dt.date,
                    data: dict[str, dict] | None = None) -> dict[str, str]:
    """Run a cycle's stages in order and return each stage's status.

    A stage goes on to the next when it is done; a fan-out stage goes on when at least one
    branch was approved (a rejected outlet plan does not hold up the others). A stage that
    ends rejected or expired, or a cancelled cycle, ends the chain there. A stage of kind
    implementation has no request of its own: it is open from the moment the chain reaches it
    until the stage after it settles. `data` gives an approval stage what its approvers see.
    """
    plan = load_plan(get_settings().plan_file)
    waiter = str(flow_run.id)
    statuses: dict[str, str] = {}
    open_period: str | None = None
    started = False
    for stage in plan.cycle(cycle_kind).stages:
        if await stopped_before(cycle_kind=cycle_kind, period=period, stage_id=stage.id):
            break  # a coordinator ended the cycle: nothing more is opened
        if stage.kind is StageKind.implementation:
            open_period = stage.id
            statuses[stage.id] = await mark_stage(cycle_kind=cycle_kind, period=period, stage_id=stage.id,
                                                  status=StageStatus.waiting.value)
            continue
        request_ids = await open_stage(cycle_kind=cycle_kind, period=period, starts_on=starts_on, stage_id=stage.id,
                                       waiter_ref=waiter, data=(data or {}).get(stage.id))
        if not started:
            await send_cycle_digest(cycle_kind=cycle_kind, period=period, event="started")
            started = True
        settled = await wait_for_all(request_ids)
        statuses[stage.id] = await record_stage(settled[0])
        if open_period is not None:
            statuses[open_period] = await mark_stage(cycle_kind=cycle_kind, period=period, stage_id=open_period,
                                                     status=StageStatus.done.value)
            open_period = None
        if statuses[stage.id] != StageStatus.done.value and not await any_approved(settled):
            break
    await send_cycle_digest(cycle_kind=cycle_kind, period=period, event="finished")
    return statuses
