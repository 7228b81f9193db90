"""A cycle's chain of stages, in the plan file's order: what every cycle flow runs.

One run carries a cycle. It waits (suspended, holding no process) once per stage until the
whole stage has settled, however many branches it has and however many rounds of changes
they go through: the branches settle in the database, and the run is woken once, by the
service, when the last one does. It also waits for a stage's own opening date. Nothing here
counts the run's resumes, because nothing needs to: a stage wakes it a bounded number of times.
"""

from __future__ import annotations

import datetime as dt
import uuid

from prefect.runtime import flow_run

from approvals.config import get_settings
from approvals.plan import load_plan
from approvals.plan.stages import Stage, StageKind
from approvals.statuses import StageStatus
from flows.reports import issue_report
from flows.stages import (
    Heartbeat,
    cycle_cancelled,
    finish_cycle,
    lapsed,
    open_stage,
    record_stage,
    report_failure,
    schedule_stage,
    send_cycle_digest,
    stage_now,
    take_cycle,
)


def depends_on(stages: list[Stage], index: int) -> list[str]:
    """The stages whose outcome this one needs: as the plan says, else the one before it."""
    stage = stages[index]
    if stage.depends_on is not None:
        return list(stage.depends_on)
    return [stages[index - 1].id] if index else []


async def run_chain(
    *, cycle_kind: str, period: str, starts_on: dt.date, data: dict[str, dict] | None = None
) -> dict[str, str]:
    """Run a cycle's stages in order and return each stage's status (or, for a run that found
    the cycle carried by another, {"joined": that run's id}).

    A stage opens when the stages it depends on passed: done, or gone on without (lapsed), or
    for a fan-out at least one branch approved (a rejected outlet plan does not hold up the
    others). Otherwise it is skipped. A stage with its own opening date (the annual report on
    1 October) waits for it, whatever happened before. A stage of kind implementation has no
    request of its own: it is open from the moment the chain reaches it until the stage after
    it settles. A cancelled cycle stops at once. `data` gives an approval stage what its
    approvers see.
    """
    me = str(flow_run.id)
    taken = await take_cycle(cycle_kind=cycle_kind, period=period, starts_on=starts_on, run_id=me)
    if not taken["taken"]:
        return {"joined": taken["owner"]}
    cycle_id = uuid.UUID(taken["cycle_id"])
    heartbeat = Heartbeat(cycle_id, me, every=get_settings().run_heartbeat_seconds)
    heartbeat.start()
    try:
        statuses = await _stages(heartbeat, cycle_kind=cycle_kind, period=period, starts_on=starts_on, data=data)
    except Exception as exc:  # not a suspension (a BaseException): the run fails, and a coordinator is told
        await heartbeat.stop()
        await report_failure(cycle_id, me, exc)
        raise
    await heartbeat.stop()
    await send_cycle_digest(cycle_kind=cycle_kind, period=period, event="finished")
    await finish_cycle(cycle_kind=cycle_kind, period=period, run_id=me)
    return statuses


async def _stages(
    heartbeat: Heartbeat, *, cycle_kind: str, period: str, starts_on: dt.date, data: dict[str, dict] | None
) -> dict[str, str]:
    plan = load_plan(get_settings().plan_file)
    stages = list(plan.cycle(cycle_kind).stages)
    key = dict(cycle_kind=cycle_kind, period=period)
    statuses: dict[str, str] = {}
    passed: dict[str, bool] = {}
    open_period: str | None = None
    started = False
    for index, stage in enumerate(stages):
        if await cycle_cancelled(**key):
            break  # a coordinator ended the cycle: nothing more is opened
        if not all(passed.get(needed, False) for needed in depends_on(stages, index)):
            statuses[stage.id] = await record_stage(**key, stage_id=stage.id, status=StageStatus.skipped.value)
            passed[stage.id] = False
            continue
        if stage.opens_on is not None and not await schedule_stage(**key, stage_id=stage.id):
            await heartbeat.wait(stage.id)  # the sweep wakes the run on the day
        if stage.kind is StageKind.implementation:
            open_period = stage.id
            statuses[stage.id] = await record_stage(**key, stage_id=stage.id, status=StageStatus.waiting.value)
            passed[stage.id] = True
            continue
        opened = await open_stage(
            **key, starts_on=starts_on, stage_id=stage.id, waiter_ref=str(flow_run.id), data=(data or {}).get(stage.id)
        )
        if not opened:  # no unit carried it on the day: recorded skipped, and what depends on it is too
            statuses[stage.id], passed[stage.id] = StageStatus.skipped.value, False
            continue
        if not started:
            await send_cycle_digest(**key, event="started")
            started = True
        now = await stage_now(**key, stage_id=stage.id)
        state = now.state
        if not now.over:
            # The service wakes the run once the whole stage has settled (or, for a stage the
            # chain leaves at its due time, then).
            await heartbeat.wait(stage.id)
        if stage.kind is StageKind.consolidation and state.status is StageStatus.done:
            # Signed, numbered, sealed, sent to the PPC and recorded, once. A director who signs on
            # the phone is asked first: the run waits until the service wakes it with the answer.
            while (await issue_report(**key, stage_id=stage.id)).get("awaiting_signature"):
                await heartbeat.wait(stage.id)
        if await lapsed(**key, stage_id=stage.id):
            statuses[stage.id], passed[stage.id] = StageStatus.lapsed.value, True
        else:
            statuses[stage.id] = state.status.value
            passed[stage.id] = state.status.passes or (stage.kind is StageKind.fan_out and state.any_approved)
        if open_period is not None:
            statuses[open_period] = await record_stage(**key, stage_id=open_period, status=StageStatus.done.value)
            open_period = None
    return statuses
