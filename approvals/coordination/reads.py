"""What coordinators read: the cycles and their progress, requests by filter, the steps
nobody could be asked for, who is waited on, and one request's whole history."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from approvals.db import row_of
from approvals.errors import NotFound
from approvals.models import ApprovalRequest, Assignment, AuditEvent, Cycle, CycleStage, Decision, SubmissionLink, Wake
from approvals.running.cycles import latest_restarts
from approvals.statuses import AssignmentStatus, LinkStatus, RequestStatus

CYCLE_CANCELLED = "cycle.cancelled"


@dataclass(frozen=True)
class StageProgress:
    """One stage of one cycle: its recorded status and its requests (latest round of each subject)."""

    status: str | None
    updated_at: dt.datetime | None
    total: int = 0
    settled: int = 0
    overdue: int = 0


@dataclass(frozen=True)
class CycleView:
    cycle: Cycle
    stages: dict[str, StageProgress]
    flow_runs: list[str]
    cancelled_at: dt.datetime | None
    restart: Wake | None = None  # the latest restart asked


async def cycles(
    session: AsyncSession,
    *,
    now: dt.datetime,
    year: int | None = None,
    kind: str | None = None,
    cycle_id: uuid.UUID | None = None,
) -> list[CycleView]:
    """Cycles newest first, each with its stages' progress, its flow runs and whether it was
    cancelled. The database counts each stage's latest rounds (one aggregate), so a page of a
    year's cycles costs the same however many years came before it."""
    query = select(Cycle).order_by(Cycle.period.desc(), Cycle.kind)
    if year is not None:
        query = query.where(Cycle.period.startswith(str(year)))
    if kind is not None:
        query = query.where(Cycle.kind == kind)
    if cycle_id is not None:
        query = query.where(Cycle.id == cycle_id)
    found = list((await session.execute(query)).scalars())
    if not found:
        return []
    ids = [c.id for c in found]
    recorded = {
        (s.cycle_id, s.stage): s
        for s in (await session.execute(select(CycleStage).where(CycleStage.cycle_id.in_(ids)))).scalars()
    }
    newer = aliased(ApprovalRequest)
    still_open = ApprovalRequest.status.in_([s.value for s in RequestStatus if s.open])
    counts = {
        (cid, stage): (total, settled, overdue)
        for cid, stage, total, settled, overdue in await session.execute(
            select(
                ApprovalRequest.cycle_id,
                ApprovalRequest.stage,
                func.count(),
                func.sum(case((still_open, 0), else_=1)),
                func.sum(case((still_open & (ApprovalRequest.due_at < now), 1), else_=0)),
            )
            .where(
                ApprovalRequest.cycle_id.in_(ids),
                ~select(newer.id).where(newer.previous_id == ApprovalRequest.id).exists(),
            )
            .group_by(ApprovalRequest.cycle_id, ApprovalRequest.stage)
        )
    }
    runs: dict[uuid.UUID, list[str]] = defaultdict(list)
    for cycle in found:
        if cycle.run_id:
            runs[cycle.id].append(cycle.run_id)
    for cid, ref in await session.execute(
        select(ApprovalRequest.cycle_id, ApprovalRequest.waiter_ref)
        .distinct()
        .where(ApprovalRequest.cycle_id.in_(ids), ApprovalRequest.waiter_ref.is_not(None))
    ):
        if ref is not None and ref not in runs[cid]:  # always (the query's condition): for the checker
            runs[cid].append(ref)
    cancelled = await cancelled_cycles(session, ids)
    restarts = await latest_restarts(session, ids)
    views = []
    for cycle in found:
        stage_ids = {stage for (cid, stage) in [*recorded, *counts] if cid == cycle.id}
        stages = {}
        for stage in stage_ids:
            row = recorded.get((cycle.id, stage))
            total, settled, overdue = counts.get((cycle.id, stage), (0, 0, 0))
            stages[stage] = StageProgress(
                row.status if row else None,
                row.updated_at if row else None,
                int(total or 0),
                int(settled or 0),
                int(overdue or 0),
            )
        views.append(CycleView(cycle, stages, runs.get(cycle.id, []), cancelled.get(cycle.id), restarts.get(cycle.id)))
    return views


async def cancelled_cycles(session: AsyncSession, cycle_ids: list[uuid.UUID]) -> dict[uuid.UUID, dt.datetime]:
    rows = await session.execute(
        select(AuditEvent.entity_id, AuditEvent.at).where(
            AuditEvent.entity == "cycle",
            AuditEvent.action == CYCLE_CANCELLED,
            AuditEvent.entity_id.in_([str(i) for i in cycle_ids]),
        )
    )
    return {uuid.UUID(entity_id): at for entity_id, at in rows}


async def cycle_cancelled(session: AsyncSession, cycle_id: uuid.UUID) -> bool:
    return bool(await cancelled_cycles(session, [cycle_id]))


@dataclass(frozen=True)
class RequestView:
    request: ApprovalRequest
    cycle: Cycle
    waiting_on: list[str]  # officials with a pending assignment

    def overdue(self, now: dt.datetime) -> bool:
        return RequestStatus(self.request.status).open and self.request.due_at < now


async def find_requests(
    session: AsyncSession,
    *,
    now: dt.datetime,
    status: RequestStatus = RequestStatus.pending,
    agency: str | None = None,
    stage: str | None = None,
    cycle_id: uuid.UUID | None = None,
    overdue: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[RequestView]:
    """Requests in a status (pending by default), the longest-due first."""
    query = (
        select(ApprovalRequest, Cycle)
        .join(Cycle, Cycle.id == ApprovalRequest.cycle_id)
        .where(ApprovalRequest.status == status.value)
    )
    if agency is not None:
        query = query.where(ApprovalRequest.acting_agency == agency)
    if stage is not None:
        query = query.where(ApprovalRequest.stage == stage)
    if cycle_id is not None:
        query = query.where(ApprovalRequest.cycle_id == cycle_id)
    if overdue is True:
        query = query.where(ApprovalRequest.due_at < now)
    elif overdue is False:
        query = query.where(ApprovalRequest.due_at >= now)
    rows = (
        await session.execute(query.order_by(ApprovalRequest.due_at, ApprovalRequest.id).limit(limit).offset(offset))
    ).all()
    waiting = await _pending_officials(session, [r.id for r, _ in rows])
    return [RequestView(r, c, waiting.get(r.id, [])) for r, c in rows]


async def _pending_officials(session: AsyncSession, request_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    if not request_ids:
        return {}
    found: dict[uuid.UUID, list[str]] = defaultdict(list)
    for request_id, official_id in await session.execute(
        select(Assignment.request_id, Assignment.official_id)
        .where(Assignment.request_id.in_(request_ids), Assignment.status == AssignmentStatus.pending.value)
        .order_by(Assignment.position)
    ):
        found[request_id].append(official_id)
    # A step waiting for a (re)submission waits on the unit's officer who holds the form link.
    for request_id, official_id in await session.execute(
        select(SubmissionLink.request_id, SubmissionLink.official_id).where(
            SubmissionLink.request_id.in_(request_ids), SubmissionLink.status == LinkStatus.pending.value
        )
    ):
        found[request_id].append(official_id)
    return found


UNROUTED_ACTIONS = ("submission.unrouted", "resubmission.unrouted")


async def unrouted_steps(session: AsyncSession) -> list[RequestView]:
    """Steps nobody could be asked to (re)submit, still stuck: waiting for a first submission
    with no live form link, or sent back for changes with neither a next round nor a live
    resubmission link, and recorded as unrouted. Cancelled cycles are over and not shown.
    Reads only what is stuck now, never the whole history."""
    live_link = (
        select(SubmissionLink.id)
        .where(SubmissionLink.request_id == ApprovalRequest.id, SubmissionLink.status == LinkStatus.pending.value)
        .exists()
    )
    newer = aliased(ApprovalRequest)
    next_round = select(newer.id).where(newer.previous_id == ApprovalRequest.id).exists()
    rows = (
        await session.execute(
            select(ApprovalRequest, Cycle)
            .join(Cycle, Cycle.id == ApprovalRequest.cycle_id)
            .where(
                ApprovalRequest.status.in_(
                    [RequestStatus.awaiting_submission.value, RequestStatus.changes_requested.value]
                ),
                ~live_link,
                ~next_round,
            )
            .order_by(ApprovalRequest.due_at)
        )
    ).all()
    if not rows:
        return []
    flagged = set(
        (
            await session.execute(
                select(AuditEvent.entity_id).where(
                    AuditEvent.entity == "approval_request",
                    AuditEvent.action.in_(UNROUTED_ACTIONS),
                    AuditEvent.entity_id.in_([str(r.id) for r, _ in rows]),
                )
            )
        ).scalars()
    )
    cancelled = await cancelled_cycles(session, list({c.id for _, c in rows}))
    return [RequestView(r, c, []) for r, c in rows if str(r.id) in flagged and c.id not in cancelled]


@dataclass(frozen=True)
class Waiting:
    official_id: str
    pending: int
    overdue: int
    oldest_due_at: dt.datetime


async def waiting_on(session: AsyncSession, *, now: dt.datetime) -> list[Waiting]:
    """Officials who hold pending assignments of pending requests, the one waited on longest first."""
    rows = await session.execute(
        select(Assignment.official_id, func.count(Assignment.id), func.min(ApprovalRequest.due_at))
        .join(ApprovalRequest, ApprovalRequest.id == Assignment.request_id)
        .where(
            Assignment.status == AssignmentStatus.pending.value, ApprovalRequest.status == RequestStatus.pending.value
        )
        .group_by(Assignment.official_id)
    )
    overdue = dict(
        (
            await session.execute(
                select(Assignment.official_id, func.count(Assignment.id))
                .join(ApprovalRequest, ApprovalRequest.id == Assignment.request_id)
                .where(
                    Assignment.status == AssignmentStatus.pending.value,
                    ApprovalRequest.status == RequestStatus.pending.value,
                    ApprovalRequest.due_at < now,
                )
                .group_by(Assignment.official_id)
            )
        ).all()
    )
    found = [Waiting(official, count, overdue.get(official, 0), oldest) for official, count, oldest in rows]
    return sorted(found, key=lambda w: (w.oldest_due_at, w.official_id))


@dataclass(frozen=True)
class History:
    request: ApprovalRequest
    cycle: Cycle
    assignments: list[Assignment]
    decisions: list[Decision]
    audit: list[AuditEvent]
    waiting_on: list[str] = field(default_factory=list)


async def history(session: AsyncSession, request_id: uuid.UUID, *, audit_limit: int = 1000) -> History:
    """Everything about one request: its assignments, its decisions, its audit rows, oldest first."""
    request = await session.get(ApprovalRequest, request_id)
    if request is None:
        raise NotFound(f"no request {request_id}")
    cycle = await row_of(session, Cycle, request.cycle_id)
    assignments = list(
        (
            await session.execute(
                select(Assignment)
                .where(Assignment.request_id == request_id)
                .order_by(Assignment.created_at, Assignment.position)
            )
        ).scalars()
    )
    decisions = list(
        (
            await session.execute(
                select(Decision).where(Decision.request_id == request_id).order_by(Decision.decided_at)
            )
        ).scalars()
    )
    rows = list(
        (
            await session.execute(
                select(AuditEvent)
                .where(AuditEvent.entity == "approval_request", AuditEvent.entity_id == str(request_id))
                .order_by(AuditEvent.id)
                .limit(audit_limit)
            )
        ).scalars()
    )
    pending = [a.official_id for a in assignments if a.status == AssignmentStatus.pending.value]
    return History(request, cycle, assignments, decisions, rows, pending)
