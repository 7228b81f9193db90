"""What coordinators read and do: who holds what, a request's history, and the actions
they take by hand (remind, escalate, reassign, cancel a cycle, record an event).

Every function works inside the caller's transaction and only flushes; the caller
queues the emails for the assignments returned, in that same transaction, and
commits. Actions lock requests with `lock_request` (in id order when there are
several), like decisions and the sweep, so they queue instead of racing.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from approvals import audit, chasing, delegations
from approvals.chasing import rotate_links, superiors_for
from approvals.cycles import latest_restarts
from approvals.decisions import settle_request
from approvals.errors import Conflict, NotFound
from approvals.models import (
    ApprovalRequest,
    Assignment,
    AssignmentStatus,
    AuditEvent,
    Cycle,
    CycleStage,
    Decision,
    Delegation,
    EconomicEvent,
    ProblemReport,
    RequestStatus,
    StageStatus,
    SubmissionLink,
    Wake,
)
from approvals.plan.schema import Plan, Stage
from approvals.requests import (
    AlreadyDecided,
    NewAssignment,
    Refused,
    local_day,
    lock_request,
)
from approvals.requests import reassign as reassign_assignment
from approvals.stages import ANY_STAGE, WakeReason, enqueue_wake
from approvals.submissions import SubmissionAsked, ask_unasked, pending_link, remind_submitter

CYCLE_CANCELLED = "cycle.cancelled"


# Reads ---------------------------------------------------------------------------------


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
        if ref not in runs[cid]:
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
            SubmissionLink.request_id.in_(request_ids), SubmissionLink.status == "pending"
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
        .where(SubmissionLink.request_id == ApprovalRequest.id, SubmissionLink.status == "pending")
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
    cycle = await session.get(Cycle, request.cycle_id)
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


# Actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acted:
    """An action on one request, and who must now be emailed a (new) link."""

    request: ApprovalRequest
    cycle: Cycle
    notify: list[NewAssignment]
    submission: SubmissionAsked | None = None  # a unit that has not submitted: its form link again


def plan_stage(plan: Plan, cycle: Cycle, stage_id: str) -> Stage | None:
    kind = next((c for c in plan.cycles if c.id == cycle.kind), None)
    return next((s for s in kind.stages if s.id == stage_id), None) if kind else None


async def _locked_pending(session: AsyncSession, request_id: uuid.UUID) -> tuple[ApprovalRequest, Cycle]:
    request = await lock_request(session, request_id)
    if request is None:
        raise NotFound(f"no request {request_id}")
    if request.status != RequestStatus.pending.value:
        raise AlreadyDecided()
    return request, await session.get(Cycle, request.cycle_id)


async def remind(
    session: AsyncSession,
    *,
    plan: Plan,
    secret: bytes,
    request_id: uuid.UUID,
    by: str,
    now: dt.datetime,
    link_ttl: dt.timedelta,
) -> Acted:
    """A reminder now, outside the plan's schedule (which it does not shift). A step still
    waiting for its unit's submission reminds the unit's officer with a fresh form link (the
    last one stops working), as the approvers' reminders carry fresh approval links."""
    request = await lock_request(session, request_id)
    if request is not None and request.status in (
        RequestStatus.awaiting_submission.value,
        RequestStatus.changes_requested.value,
    ):
        return await _remind_submitter(session, plan, secret, request, by=by, now=now, link_ttl=link_ttl)
    request, cycle = await _locked_pending(session, request_id)
    notify = await rotate_links(session, plan=plan, secret=secret, request=request, now=now, link_ttl=link_ttl)
    if not notify:
        raise Refused("nobody who can be reached is waited on for this request")
    await audit.append(
        session,
        actor=by,
        action="request.reminded",
        entity="approval_request",
        entity_id=str(request.id),
        data={"manual": True, "to": [n.official.id for n in notify]},
    )
    return Acted(request, cycle, notify)


async def _remind_submitter(
    session: AsyncSession,
    plan: Plan,
    secret: bytes,
    request: ApprovalRequest,
    *,
    by: str,
    now: dt.datetime,
    link_ttl: dt.timedelta,
) -> Acted:
    """The unit's officer gets a fresh form link; a step nobody could be asked to (re)submit is
    asked now, if someone holds the role today."""
    newer = (
        await session.execute(select(ApprovalRequest.id).where(ApprovalRequest.previous_id == request.id).limit(1))
    ).first()
    if newer is not None:
        raise AlreadyDecided()  # resubmitted: the next round is the one waiting
    asked = await remind_submitter(session, plan=plan, secret=secret, request=request, now=now)
    if asked is None and await pending_link(session, request.id, now) is None:
        asked = await ask_unasked(session, plan=plan, secret=secret, request=request, now=now, link_ttl=link_ttl)
    if asked is None:
        raise Refused("nobody who can be reached is asked to submit this step")
    await audit.append(
        session,
        actor=by,
        action="submission.reminded",
        entity="approval_request",
        entity_id=str(request.id),
        data={"manual": True, "to": asked.official.id},
    )
    return Acted(request, await session.get(Cycle, request.cycle_id), [], asked)


async def remind_many(
    session: AsyncSession,
    *,
    plan: Plan,
    secret: bytes,
    request_ids: list[uuid.UUID],
    by: str,
    now: dt.datetime,
    link_ttl: dt.timedelta,
) -> list[Acted]:
    """All or nothing: one unknown or settled request refuses the whole batch."""
    return [
        await remind(session, plan=plan, secret=secret, request_id=request_id, by=by, now=now, link_ttl=link_ttl)
        for request_id in sorted(set(request_ids))
    ]


async def escalate(
    session: AsyncSession,
    *,
    plan: Plan,
    secret: bytes,
    request_id: uuid.UUID,
    by: str,
    now: dt.datetime,
    link_ttl: dt.timedelta,
) -> Acted:
    """What the sweep does at the due time when the policy is to escalate, done now.

    The stage's superior joins (mode add) or takes over (mode handover), with the expiry rule of
    `chasing.escalation_expiry`. Refused when the stage has no superior, or none can be resolved
    today: a handover to nobody would leave the step with no approver.
    """
    request, cycle = await _locked_pending(session, request_id)
    if request.escalated_at is not None:
        raise Conflict("this request has already been escalated")
    stage = plan_stage(plan, cycle, request.stage)
    if stage is None or stage.escalate_to is None:
        raise Refused(f"stage '{request.stage}' has no superior to escalate to")
    superiors = await superiors_for(session, plan=plan, request=request, stage=stage, now=now)
    if not superiors:
        raise Refused(f"nobody holding '{stage.escalate_to}' can be asked who is not already asked")
    notify = await chasing.escalate(
        session,
        plan=plan,
        secret=secret,
        request=request,
        stage=stage,
        actor=by,
        now=now,
        link_ttl=link_ttl,
        superiors=superiors,
    )
    return Acted(request, cycle, notify)


async def reassign(
    session: AsyncSession,
    *,
    plan: Plan,
    secret: bytes,
    assignment_id: uuid.UUID,
    to_official: str,
    by: str,
    now: dt.datetime,
    link_ttl: dt.timedelta,
) -> Acted:
    """Move one assignment to another official; `notify` is empty when the new one waits its turn."""
    if await session.get(Assignment, assignment_id) is None:
        raise NotFound(f"no assignment {assignment_id}")
    new = await reassign_assignment(
        session,
        plan=plan,
        secret=secret,
        assignment_id=assignment_id,
        to_official=to_official,
        by=by,
        now=now,
        link_ttl=link_ttl,
    )
    request = await session.get(ApprovalRequest, new.assignment.request_id)
    cycle = await session.get(Cycle, request.cycle_id)
    active = new.assignment.status == AssignmentStatus.pending.value
    return Acted(request, cycle, [new] if active else [])


@dataclass(frozen=True)
class Cancelled:
    cycle: Cycle
    expired: list[ApprovalRequest]
    at: dt.datetime
    closed: dict[uuid.UUID, list[str]] = field(default_factory=dict)  # request -> officials whose link closed


async def cancel_cycle(
    session: AsyncSession, *, cycle_id: uuid.UUID, reason: str, by: str, now: dt.datetime
) -> Cancelled:
    """End a cycle: each pending request expires (never an approval), its links close, and its
    waiting stages are marked expired. The flow runs waiting on them learn it on resume."""
    cycle = (await session.execute(select(Cycle).where(Cycle.id == cycle_id).with_for_update())).scalar()
    if cycle is None:
        raise NotFound(f"no cycle {cycle_id}")
    if await cancelled_cycles(session, [cycle.id]):
        raise Conflict("this cycle has already been cancelled")
    reason = unicodedata.normalize("NFC", reason)
    open_statuses = [s.value for s in RequestStatus if s.open]
    pending_ids = sorted(
        (
            await session.execute(
                select(ApprovalRequest.id).where(
                    ApprovalRequest.cycle_id == cycle.id, ApprovalRequest.status.in_(open_statuses)
                )
            )
        ).scalars()
    )
    expired, closed = [], {}
    for request_id in pending_ids:
        request = await lock_request(session, request_id)
        if request.status not in open_statuses:
            continue  # decided between the list and the lock
        closed[request.id] = await settle_request(session, request=request, outcome=RequestStatus.expired, now=now)
        await audit.append(
            session,
            actor=by,
            action="request.expired",
            entity="approval_request",
            entity_id=str(request.id),
            data={"reason": "cycle cancelled"},
        )
        expired.append(request)
    # A step sent back for changes waits on its resubmission link: that closes too. The run,
    # wherever it waits (a stage, or a scheduled stage's date), is woken to learn of it.
    await session.execute(
        update(SubmissionLink)
        .where(
            SubmissionLink.status == "pending",
            SubmissionLink.request_id.in_(select(ApprovalRequest.id).where(ApprovalRequest.cycle_id == cycle.id)),
        )
        .values(status="closed")
        .execution_options(synchronize_session=False)
    )
    await enqueue_wake(session, cycle_id=cycle.id, stage=ANY_STAGE, reason=WakeReason.cycle_cancelled, now=now)
    await session.execute(
        update(CycleStage)
        .where(CycleStage.cycle_id == cycle.id, CycleStage.status == StageStatus.waiting.value)
        .values(status=StageStatus.expired.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    event = await audit.append(
        session,
        actor=by,
        action=CYCLE_CANCELLED,
        entity="cycle",
        entity_id=str(cycle.id),
        data={"cycle": f"{cycle.kind}/{cycle.period}", "reason": reason, "expired": [str(r.id) for r in expired]},
    )
    return Cancelled(cycle, expired, event.at, closed)


async def record_event(
    session: AsyncSession, *, name: str, starts_on: dt.date, description: str, by: str, now: dt.datetime
) -> EconomicEvent:
    """An economic event, for which the per-event economy cycle is to be started."""
    event = EconomicEvent(
        name=unicodedata.normalize("NFC", name),
        starts_on=starts_on,
        description=unicodedata.normalize("NFC", description),
        recorded_by=by,
        created_at=now,
    )
    session.add(event)
    await session.flush()
    await audit.append(
        session,
        actor=by,
        action="event.recorded",
        entity="economic_event",
        entity_id=str(event.id),
        data={"name": event.name, "starts_on": starts_on.isoformat()},
    )
    return event


async def record_problem(
    session: AsyncSession, *, plan: Plan, title: str, description: str, unit: str, by: str, now: dt.datetime
) -> ProblemReport:
    """A problem a unit raises with the PPC; its escalation cycle is started from it. Only a unit
    in force on the day may raise one (a district abolished in 2025 may not: its successor does)."""
    if not any(a.id == unit for a in plan.agencies):
        raise Refused(f"unknown unit '{unit}' (use an agency id of the plan)")
    agency = plan.agency(unit)
    if not agency.valid_on(local_day(plan, now)):
        successors = ", ".join(a.id for a in plan.in_force(unit, local_day(plan, now)))
        raise Refused(
            f"unit '{unit}' is not in force on {local_day(plan, now)}"
            + (f" (its duties went to {successors})" if successors else "")
        )
    problem = ProblemReport(
        title=unicodedata.normalize("NFC", title),
        description=unicodedata.normalize("NFC", description),
        unit=unit,
        recorded_by=by,
        created_at=now,
    )
    session.add(problem)
    await session.flush()
    await audit.append(
        session,
        actor=by,
        action="problem.recorded",
        entity="problem_report",
        entity_id=str(problem.id),
        data={"title": problem.title, "unit": unit},
    )
    return problem


async def list_problems(session: AsyncSession, *, limit: int = 100, offset: int = 0) -> list[ProblemReport]:
    return list(
        (
            await session.execute(
                select(ProblemReport).order_by(ProblemReport.created_at.desc()).limit(limit).offset(offset)
            )
        ).scalars()
    )


async def problems_without_cycle(session: AsyncSession, *, since: dt.datetime) -> list[ProblemReport]:
    """Problems recorded since a time whose escalation cycle has not been created yet."""
    return list(
        (
            await session.execute(
                select(ProblemReport)
                .where(ProblemReport.cycle_id.is_(None), ProblemReport.created_at >= since)
                .order_by(ProblemReport.created_at)
            )
        ).scalars()
    )


async def events_without_cycle(session: AsyncSession, *, since: dt.datetime) -> list[EconomicEvent]:
    """Events recorded since a time whose economy cycle has not been created yet."""
    return list(
        (
            await session.execute(
                select(EconomicEvent)
                .where(EconomicEvent.cycle_id.is_(None), EconomicEvent.created_at >= since)
                .order_by(EconomicEvent.created_at)
            )
        ).scalars()
    )


async def list_events(session: AsyncSession, *, limit: int = 100, offset: int = 0) -> list[EconomicEvent]:
    return list(
        (
            await session.execute(
                select(EconomicEvent)
                .order_by(EconomicEvent.starts_on.desc(), EconomicEvent.created_at.desc())
                .limit(limit)
                .offset(offset)
            )
        ).scalars()
    )


async def revoke_delegation(
    session: AsyncSession, *, delegation_id: uuid.UUID, by: str, now: dt.datetime
) -> Delegation:
    row = await session.get(Delegation, delegation_id)
    if row is None:
        raise NotFound(f"no delegation {delegation_id}")
    if not await delegations.revoke_delegation(session, delegation_id=delegation_id, by=by, now=now):
        raise Conflict("this delegation has already been revoked")
    await session.refresh(row)
    return row
