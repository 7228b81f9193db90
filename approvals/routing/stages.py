"""A stage as a whole: the state of all its branches, and waking the run that carries the cycle.

A cycle's run waits once per stage, not once per branch: it is woken when the whole stage
has settled (every branch's latest round approved, rejected or expired), or when its cycle
is cancelled, or when a scheduled stage's date comes, or when a stage the chain leaves at its
due time (the annual reports) reaches it. Rounds of changes happen here, in the
transactions of the decisions and submissions, and never wake it. So the run is resumed a
bounded number of times a year, whatever the number of branches (a Prefect run replays from
the top on every resume, so a wake per branch costs the square of their number).

The wake is a row written in the same transaction as the change that causes it; the service
delivers it (`service.resume`). Every function works in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import Executable

from approvals import audit
from approvals.db import core, dialect_name, table_of
from approvals.models import ApprovalRequest, CycleStage, Wake
from approvals.statuses import RequestStatus, StageStatus, WakeStatus

OPEN = frozenset(s for s in RequestStatus if s.open)
# Recorded by the chain itself, not by its branches' outcomes.
KEPT = frozenset(s.value for s in (StageStatus.lapsed, StageStatus.skipped))
UNSETTLED = OPEN | {RequestStatus.changes_requested}  # sent back: its unit is asked to resubmit


ANY_STAGE = ""  # a wake for the run wherever it waits (a cancelled cycle)
RESTART = "~restart"  # not a stage: a coordinator asked for a new run to carry the cycle


class WakeReason:
    stage_settled = "stage_settled"
    cycle_cancelled = "cycle_cancelled"
    stage_opens = "stage_opens"
    stage_due = "stage_due"  # a stage the chain leaves at its due time (go_on_at_due) has reached it
    restart = "restart"  # start a new run for the cycle (stage RESTART)
    restart_forced = "restart_forced"  # the same, even though its run looks alive (cancelled first)
    signature_answered = "signature_answered"  # the director answered a remote signature request on the phone


@dataclass(frozen=True)
class StageState:
    counts: Counter[RequestStatus]  # RequestStatus -> branches whose latest round is in it
    status: StageStatus

    @property
    def branches(self) -> int:
        return sum(self.counts.values())

    @property
    def settled(self) -> bool:
        return self.branches > 0 and not any(self.counts[s] for s in UNSETTLED)

    @property
    def any_approved(self) -> bool:
        return self.counts[RequestStatus.approved] > 0


def status_of(counts: Counter[RequestStatus]) -> StageStatus:
    """A stage's status from its branches' latest rounds: done when every branch is approved;
    sent back or still waiting while any is; else rejected, else expired."""
    total = sum(counts.values())
    if total and counts[RequestStatus.approved] == total:
        return StageStatus.done
    if counts[RequestStatus.changes_requested]:
        return StageStatus.changes_requested
    if not total or any(counts[s] for s in OPEN):
        return StageStatus.waiting
    return StageStatus.rejected if counts[RequestStatus.rejected] else StageStatus.expired


_NEWER = aliased(ApprovalRequest)
# Built once: every settlement runs it, and building an aliased select costs more than running it.
_LATEST_COUNTS = (
    select(ApprovalRequest.status, func.count())
    .where(
        ApprovalRequest.cycle_id == bindparam("cycle_id"),
        ApprovalRequest.stage == bindparam("stage"),
        ~select(_NEWER.id).where(_NEWER.previous_id == ApprovalRequest.id).exists(),
    )
    .group_by(ApprovalRequest.status)
)


_RECORD_SINGLE = (
    update(CycleStage)
    .where(
        CycleStage.cycle_id == bindparam("of_cycle"),
        CycleStage.stage == bindparam("of_stage"),
        CycleStage.status.not_in(sorted(KEPT)),
        CycleStage.status != bindparam("new_status"),
    )
    .values(status=bindparam("new_status"), updated_at=bindparam("at"))
    .returning(CycleStage.id)
    .execution_options(synchronize_session=False)
)


async def stage_state(session: AsyncSession, cycle_id: uuid.UUID, stage: str) -> StageState:
    """One aggregate over the stage's latest rounds (a round is latest when none re-opens it):
    the database counts, so the cost per decision does not grow with the number of branches
    as a list of rows would."""
    rows = await core(session, _LATEST_COUNTS, {"cycle_id": cycle_id, "stage": stage})
    counts = Counter({RequestStatus(status): n for status, n in rows})
    return StageState(counts, status_of(counts))


async def lock_stage(session: AsyncSession, cycle_id: uuid.UUID, stage: str) -> CycleStage | None:
    """The stage's row, locked: settlements of one stage take turns here, so the last branch to
    settle sees every other one settled (two at once would each see the other still open)."""
    return (
        await session.execute(
            select(CycleStage)
            .where(CycleStage.cycle_id == cycle_id, CycleStage.stage == stage)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar()


async def enqueue_wake(
    session: AsyncSession,
    *,
    cycle_id: uuid.UUID,
    stage: str,
    reason: str,
    now: dt.datetime,
    requested_by: str | None = None,
) -> None:
    """Queue a wake of the cycle's run at a stage; one queued wake per stage (a second adds nothing)."""
    values = dict(
        cycle_id=cycle_id,
        stage=stage,
        reason=reason,
        status=WakeStatus.queued.value,
        attempts=0,
        next_attempt_at=now,
        last_error="",
        created_at=now,
        requested_by=requested_by,
    )
    await core(session, _ENQUEUE_WAKE[dialect_name(session)], values)


def _enqueue_wake_statements() -> dict[str, Executable]:
    """Built once per dialect (a settling decision runs it): insert the wake unless one is queued."""
    # The partial index's predicate as a literal: bound as a parameter, PostgreSQL cannot match it
    # to the index once a connection's prepared statement runs with a generic plan (after a few
    # executions), and every wake then fails with "no unique or exclusion constraint matching".
    where = text(f"status = '{WakeStatus.queued.value}'")
    return {
        name: insert_(table_of(Wake.__table__)).on_conflict_do_nothing(
            index_elements=["cycle_id", "stage"], index_where=where
        )
        for name, insert_ in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
    }


_ENQUEUE_WAKE = _enqueue_wake_statements()


async def after_settled(session: AsyncSession, request: ApprovalRequest, *, now: dt.datetime) -> StageState:
    """Called in the transaction that moved a request out of the open states: records the
    stage's status, and wakes the cycle's run once the whole stage has settled."""
    if request.subject == "":
        # A stage of one branch (not a fan-out or a report): this request is its latest round,
        # and the request's own lock already orders everything that settles it. One statement
        # records the stage's status, instead of locking the stage and counting its rounds.
        counts = Counter({RequestStatus(request.status): 1})
        state = StageState(counts, status_of(counts))
        recorded = (
            await core(
                session,
                _RECORD_SINGLE,
                {"of_cycle": request.cycle_id, "of_stage": request.stage, "new_status": state.status.value, "at": now},
            )
        ).scalar()
        if recorded is not None:
            await audit.append(
                session,
                actor="system",
                action="stage.recorded",
                entity="cycle_stage",
                entity_id=str(recorded),
                data={"stage": request.stage, "status": state.status.value},
            )
    else:
        row = await lock_stage(session, request.cycle_id, request.stage)
        state = await stage_state(session, request.cycle_id, request.stage)
        if row is not None and row.status not in KEPT:
            await set_stage_status(
                session, cycle_id=request.cycle_id, stage=request.stage, status=state.status, now=now, row=row
            )
    if state.settled:
        await enqueue_wake(
            session, cycle_id=request.cycle_id, stage=request.stage, reason=WakeReason.stage_settled, now=now
        )
    return state


async def due_openings(session: AsyncSession, *, now: dt.datetime) -> int:
    """Wake the runs whose scheduled stage's date has come (the sweep calls this)."""
    due = list(
        (
            await session.execute(
                select(CycleStage.cycle_id, CycleStage.stage).where(
                    CycleStage.status == StageStatus.scheduled.value, CycleStage.opens_at <= now
                )
            )
        ).all()
    )
    for cycle_id, stage in due:
        await enqueue_wake(session, cycle_id=cycle_id, stage=stage, reason=WakeReason.stage_opens, now=now)
    return len(due)


async def due_goings_on(session: AsyncSession, *, now: dt.datetime) -> int:
    """Wake the runs waiting at a stage they leave at its due time, settled or not (the sweep
    calls this): once per stage, however many passes of the sweep come after."""
    woken = (
        select(Wake.id)
        .where(
            Wake.cycle_id == CycleStage.cycle_id, Wake.stage == CycleStage.stage, Wake.reason == WakeReason.stage_due
        )
        .exists()
    )
    due = list(
        (
            await session.execute(
                select(CycleStage.cycle_id, CycleStage.stage).where(
                    CycleStage.goes_on_at <= now,
                    CycleStage.status.in_([StageStatus.waiting.value, StageStatus.changes_requested.value]),
                    ~woken,
                )
            )
        ).all()
    )
    for cycle_id, stage in due:
        await enqueue_wake(session, cycle_id=cycle_id, stage=stage, reason=WakeReason.stage_due, now=now)
    return len(due)


_STAGE_STATUS = (
    update(CycleStage)
    .where(CycleStage.id == bindparam("row_id"))
    .values(status=bindparam("new_status"), updated_at=bindparam("at"))
    .execution_options(synchronize_session=False)
)


async def set_stage_status(
    session: AsyncSession,
    *,
    cycle_id: uuid.UUID,
    stage: str,
    status: StageStatus,
    now: dt.datetime,
    audited: bool = True,
    row: CycleStage | None = None,
) -> None:
    """Record a stage's status (audited when it changes); `row` is the stage's row when the
    caller already holds it."""
    if row is None:
        row = (
            await session.execute(select(CycleStage).where(CycleStage.cycle_id == cycle_id, CycleStage.stage == stage))
        ).scalar()
    if row is None:
        row = CycleStage(cycle_id=cycle_id, stage=stage, status=status.value, updated_at=now)
        session.add(row)
        await session.flush()
    elif row.status != status.value:
        await core(session, _STAGE_STATUS, {"row_id": row.id, "new_status": status.value, "at": now})
        set_committed_value(row, "status", status.value)
        set_committed_value(row, "updated_at", now)
    else:
        return
    if audited:
        await audit.append(
            session,
            actor="system",
            action="stage.recorded",
            entity="cycle_stage",
            entity_id=str(row.id),
            data={"stage": stage, "status": status.value},
        )
    await session.flush()
