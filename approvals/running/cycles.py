"""A cycle and the run that carries it: one run at a time, its heartbeat, and what needs a person.

A cycle is carried by one flow run (`Cycle.run_id`): the first run to claim it. A second
run for the same cycle (the yearly schedule's and one started by hand) finds it taken and
joins the first instead of carrying it too. While it works the run writes a heartbeat; before
it suspends it says it is waiting; when the chain ends it says it finished.

When a run fails, dies (its heartbeat stops while it said it was working), or is found
finished while its cycle is not, the cycle is marked as needing attention, once: the
coordinators are told, and one of them restarts it. The restarted run continues from the
database, asking nobody again.

Every function works in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.clock.deadlines import planned_due, planned_opening
from approvals.db import rowcount
from approvals.errors import Conflict, NotFound
from approvals.models import Cycle, Wake
from approvals.plan.schema import Plan
from approvals.statuses import WakeStatus


class RunState:
    running = "running"
    waiting = "waiting"
    finished = "finished"


class Attention:
    """Why a cycle needs a coordinator."""

    run_failed = "run_failed"  # the run raised: it is Failed in Prefect
    run_crashed = "run_crashed"  # its process died while it worked (no heartbeat)
    run_finished_open = "run_finished_open"  # a wake found its run over while the cycle was not
    run_missing = "run_missing"  # a wake found no run at all (deleted from Prefect)


@dataclass(frozen=True)
class Claim:
    cycle: Cycle
    owner: str  # the run carrying the cycle: this one, or the one it joins
    taken: bool  # this run carries it


async def claim(
    session: AsyncSession, cycle: Cycle, *, run_id: str, now: dt.datetime, replacing: str | None = None
) -> Claim:
    """Carry the cycle, unless another run does. `replacing` names a run known to be over: its
    successor (a restart's new run, or a later start) takes its place."""
    before = cycle.run_id
    allowed = [Cycle.run_id.is_(None), Cycle.run_id == run_id]
    if replacing:
        allowed.append(Cycle.run_id == replacing)
    moved = await session.execute(
        update(Cycle)
        .where(Cycle.id == cycle.id, or_(*allowed))
        .values(run_id=run_id, run_state=RunState.running, heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(cycle)
    taken = rowcount(moved) == 1
    if taken and before not in (None, run_id):  # a run took another's place (a restart)
        await audit.append(
            session,
            actor="system",
            action="cycle.run_claimed",
            entity="cycle",
            entity_id=str(cycle.id),
            data={"run": run_id, "replacing": before},
        )
    return Claim(cycle, cycle.run_id or "", taken)


async def beat(session: AsyncSession, cycle_id: uuid.UUID, *, run_id: str, state: str, now: dt.datetime) -> bool:
    """The run's heartbeat (and whether it works or waits); False when it no longer carries the cycle."""
    moved = await session.execute(
        update(Cycle)
        .where(Cycle.id == cycle_id, Cycle.run_id == run_id)
        .values(run_state=state, heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return rowcount(moved) == 1


async def finish(session: AsyncSession, cycle_id: uuid.UUID, *, run_id: str, now: dt.datetime) -> bool:
    moved = await session.execute(
        update(Cycle)
        .where(Cycle.id == cycle_id, Cycle.run_id == run_id, Cycle.finished_at.is_(None))
        .values(run_state=RunState.finished, heartbeat_at=now, finished_at=now, attention=None)
        .execution_options(synchronize_session=False)
    )
    if rowcount(moved) == 1:
        await audit.append(
            session,
            actor="system",
            action="cycle.finished",
            entity="cycle",
            entity_id=str(cycle_id),
            data={"run": run_id},
        )
    return rowcount(moved) == 1


async def needs_attention(
    session: AsyncSession, cycle_id: uuid.UUID, *, reason: str, detail: str, run_id: str | None, now: dt.datetime
) -> Cycle | None:
    """Mark the cycle as needing a coordinator, once per incident (compare-and-set): the cycle
    when this call marked it (the caller tells the coordinators), None when it already was,
    has finished, or is carried by another run now."""
    conditions = [Cycle.id == cycle_id, Cycle.attention.is_(None), Cycle.finished_at.is_(None)]
    if run_id is not None:
        conditions.append(Cycle.run_id == run_id)
    moved = await session.execute(
        update(Cycle)
        .where(*conditions)
        .values(attention=reason, attention_at=now, attention_detail=detail[:2000])
        .execution_options(synchronize_session=False)
    )
    if rowcount(moved) != 1:
        return None
    cycle = await session.get(Cycle, cycle_id, populate_existing=True)
    await audit.append(
        session,
        actor="system",
        action="cycle.attention",
        entity="cycle",
        entity_id=str(cycle_id),
        data={"reason": reason, "detail": detail[:500], "run": run_id},
    )
    return cycle


class NotRestartable(Conflict):
    """The cycle cannot be restarted now (finished, or its run is alive); the message says why."""


async def release(
    session: AsyncSession, cycle_id: uuid.UUID, *, by: str, now: dt.datetime, restart: int | None = None
) -> Cycle:
    """A coordinator restarted the cycle: the attention is cleared, the restart is counted (it
    named the new run's idempotency key: `restart`, when given, is that number), and the wakes
    its old run could not take are closed (the new run reads where the cycle is from the
    database). The old run still holds the cycle until the new one, finding it over, takes its
    place (`claim(replacing=...)`)."""
    cycle = (await session.execute(select(Cycle).where(Cycle.id == cycle_id).with_for_update())).scalar()
    if cycle is None:
        raise NotFound(f"no cycle {cycle_id}")
    if cycle.finished_at is not None:
        raise NotRestartable("this cycle has finished")
    reason = cycle.attention
    cycle.attention, cycle.attention_detail, cycle.attention_at = None, "", None
    cycle.run_state = None  # the old run is over: not "running" any more, nobody watches its heartbeat
    cycle.restarts = max(cycle.restarts + 1, restart or 0)
    await session.flush()
    await session.execute(
        update(Wake)
        .where(Wake.cycle_id == cycle.id, Wake.status == WakeStatus.parked.value)
        .values(status=WakeStatus.done.value, done_at=now, last_error="closed by a restart")
        .execution_options(synchronize_session=False)
    )
    await audit.append(
        session,
        actor=by,
        action="cycle.restarted",
        entity="cycle",
        entity_id=str(cycle.id),
        data={"previous_run": cycle.run_id, "attention": reason, "restart": cycle.restarts},
    )
    return cycle


@dataclass(frozen=True)
class RestartAsked:
    cycle: Cycle
    wake_id: int
    requested_at: dt.datetime
    force: bool


async def ask_restart(
    session: AsyncSession, cycle_id: uuid.UUID, *, by: str, force: bool, now: dt.datetime
) -> RestartAsked:
    """A coordinator asks for a new run to carry the cycle: queued as a wake (delivered by the
    service, which starts the run on Prefect), so asking never waits on Prefect. One restart
    is queued per cycle at a time: asking again finds it (forced, if either ask was). A
    finished cycle is refused (NotRestartable), an unknown one is NotFound."""
    from approvals.routing.stages import RESTART, WakeReason, enqueue_wake

    cycle = await session.get(Cycle, cycle_id)
    if cycle is None:
        raise NotFound(f"no cycle {cycle_id}")
    if cycle.finished_at is not None:
        raise NotRestartable("this cycle has finished")
    await enqueue_wake(
        session,
        cycle_id=cycle.id,
        stage=RESTART,
        now=now,
        requested_by=by,
        reason=WakeReason.restart_forced if force else WakeReason.restart,
    )
    queued = (
        await session.execute(
            select(Wake).where(Wake.cycle_id == cycle.id, Wake.stage == RESTART, Wake.status == WakeStatus.queued.value)
        )
    ).scalar_one()
    if force and queued.reason != WakeReason.restart_forced:
        queued.reason = WakeReason.restart_forced
        await session.flush()
    await audit.append(
        session,
        actor=by,
        action="cycle.restart_asked",
        entity="cycle",
        entity_id=str(cycle.id),
        data={"force": force, "wake": queued.id, "run": cycle.run_id, "attention": cycle.attention},
    )
    return RestartAsked(cycle, queued.id, queued.created_at, queued.reason == WakeReason.restart_forced)


async def latest_restarts(session: AsyncSession, cycle_ids: list[uuid.UUID]) -> dict[uuid.UUID, Wake]:
    """Each cycle's latest restart asked (queued, done or parked), for the coordinators' views."""
    from approvals.routing.stages import RESTART

    latest: dict[uuid.UUID, Wake] = {}
    for wake in (
        await session.execute(select(Wake).where(Wake.cycle_id.in_(cycle_ids), Wake.stage == RESTART).order_by(Wake.id))
    ).scalars():
        latest[wake.cycle_id] = wake
    return latest


async def restarted_since(session: AsyncSession, cycle_id: uuid.UUID, moment: dt.datetime) -> bool:
    """Whether the cycle was restarted at or after `moment` (a restart asked then is carried out)."""
    from approvals.models import AuditEvent

    return (
        await session.execute(
            select(AuditEvent.id)
            .where(
                AuditEvent.entity == "cycle",
                AuditEvent.entity_id == str(cycle_id),
                AuditEvent.action == "cycle.restarted",
                AuditEvent.at >= moment,
            )
            .limit(1)
        )
    ).first() is not None


async def silent_runs(session: AsyncSession, *, now: dt.datetime, grace: dt.timedelta) -> list[Cycle]:
    """Cycles whose run said it was working and has not written a heartbeat within the grace:
    its process may have died (the service asks Prefect before it decides)."""
    return list(
        (
            await session.execute(
                select(Cycle).where(
                    Cycle.finished_at.is_(None),
                    Cycle.run_state == RunState.running,
                    Cycle.attention.is_(None),
                    Cycle.heartbeat_at < now - grace,
                )
            )
        ).scalars()
    )


async def needing_attention(session: AsyncSession) -> list[Cycle]:
    return list(
        (
            await session.execute(
                select(Cycle)
                .where(Cycle.attention.is_not(None), Cycle.finished_at.is_(None))
                .order_by(Cycle.attention_at)
            )
        ).scalars()
    )


# Starting late --------------------------------------------------------------------------------


class Schedule:
    shift = "shift"  # every deadline moves by the days the start is late: all lie ahead
    keep = "keep"  # the plan's dates stay; a step is still never due sooner than the minimum notice


@dataclass(frozen=True)
class Deadline:
    stage_id: str
    label: str  # "1. Định hướng ..." in the plan's first language
    what: str  # due, or opens (a stage with its own opening date)
    at: dt.datetime


def calendar(plan: Plan, cycle_kind: str, starts_on: dt.date, *, shift_days: int = 0) -> list[Deadline]:
    """A cycle's dates as planned (moved by `shift_days`), in stage order."""
    cycle = Cycle(kind=cycle_kind, starts_on=starts_on, shift_days=shift_days)  # not stored: its dates only
    dates = []
    for stage in plan.cycle(cycle_kind).stages:
        label = f"{stage.number}. {stage.name.vi}"
        if (opens := planned_opening(plan, stage, cycle)) is not None:
            dates.append(Deadline(stage.id, label, "opens", opens))
        dates.append(Deadline(stage.id, label, "due", planned_due(plan, stage, cycle)))
    return dates


def late_by(starts_on: dt.date, today: dt.date) -> int:
    """Days a cycle starting today is late: what "shift" moves every date by."""
    return max((today - starts_on).days, 0)


async def schedule(
    session: AsyncSession,
    plan: Plan,
    *,
    kind: str,
    period: str,
    starts_on: dt.date,
    choice: str,
    by: str,
    now: dt.datetime,
) -> tuple[Cycle, bool]:
    """Record how a cycle whose dates have passed is run: its dates shifted from today, or kept.
    Once a run has taken the cycle the choice stands: (cycle, False) then, nothing changed."""
    from approvals.clock.deadlines import local_day
    from approvals.routing.steps import get_or_create_cycle

    cycle = await get_or_create_cycle(session, kind=kind, period=period, starts_on=starts_on)
    cycle = (
        await session.execute(
            select(Cycle).where(Cycle.id == cycle.id).with_for_update().execution_options(populate_existing=True)
        )
    ).scalar_one()
    if cycle.run_id is not None:
        return cycle, False
    today = local_day(plan, now)
    cycle.shift_days = late_by(starts_on, today) if choice == Schedule.shift else 0
    passed = [d for d in calendar(plan, kind, starts_on) if d.at <= now]
    await session.flush()
    await audit.append(
        session,
        actor=by,
        action="cycle.scheduled",
        entity="cycle",
        entity_id=str(cycle.id),
        data={
            "choice": choice,
            "shift_days": cycle.shift_days,
            "passed": [f"{d.stage_id} {d.what} {d.at.isoformat()}" for d in passed],
        },
    )
    return cycle, True
