"""Opening approval requests and recording decisions, exactly once.

Every function works inside the caller's transaction and only flushes.
"""

from __future__ import annotations

import datetime as dt
import hmac
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.deadlines import due_at
from approvals.models import (
    OUTCOME_TO_STATUS,
    ApprovalRequest,
    Assignment,
    AssignmentStatus,
    Cycle,
    CycleStage,
    Decision,
    Outcome,
    RequestStatus,
    StageStatus,
)
from approvals.plan.schema import Official, Plan, Policy
from approvals.policy import settle
from approvals.tokens import derive_token, hash_token, well_formed

MAX_COMMENT = 4000


class NoApprover(Exception):
    """Nobody holds an approver role on the day: the step cannot be routed (fail closed)."""


class InvalidLink(Exception):
    """Unknown, tampered, expired, revoked or used token; callers answer all of these alike."""


class AlreadyDecided(Exception):
    """The compare-and-set lost: someone (or something) settled this first."""


class CommentRequired(ValueError):
    pass


@dataclass(frozen=True)
class NewAssignment:
    assignment: Assignment
    official: Official


@dataclass(frozen=True)
class OpenedRequest:
    request: ApprovalRequest
    cycle: Cycle
    new_assignments: list[NewAssignment]


async def get_or_create_cycle(session: AsyncSession, *, kind: str, period: str, starts_on: dt.date) -> Cycle:
    cycle = (await session.execute(select(Cycle).where(Cycle.kind == kind, Cycle.period == period))).scalar()
    if cycle is None:
        cycle = Cycle(kind=kind, period=period, starts_on=starts_on)
        session.add(cycle)
        await session.flush()
    return cycle


async def open_request(
    session: AsyncSession,
    *,
    plan: Plan,
    secret: bytes,
    cycle: Cycle,
    stage_id: str,
    subject: str = "",
    waiter_ref: str | None,
    link_ttl: dt.timedelta,
    now: dt.datetime,
) -> OpenedRequest:
    """Open the stage's request, or find the one already open (a re-run after resume opens nothing)."""
    stage = next(s for s in plan.cycle(cycle.kind).stages if s.id == stage_id)
    existing = (
        await session.execute(
            select(ApprovalRequest)
            .where(ApprovalRequest.cycle_id == cycle.id, ApprovalRequest.stage == stage_id, ApprovalRequest.subject == subject)
            .order_by(ApprovalRequest.round.desc())
            .limit(1)
        )
    ).scalar()
    if existing is not None:
        if waiter_ref and existing.waiter_ref != waiter_ref:
            existing.waiter_ref = waiter_ref
            await session.flush()
        return OpenedRequest(existing, cycle, [])

    today = now.astimezone(plan_tz(plan)).date()
    officials: dict[str, tuple[Official, str]] = {}
    for role in stage.approvers:
        for official in plan.holders(role, today):
            officials.setdefault(official.id, (official, role))
    if not officials:
        raise NoApprover(f"nobody holds {', '.join(stage.approvers)} on {today}: stage '{stage_id}' cannot be routed")

    request = ApprovalRequest(
        cycle_id=cycle.id,
        stage=stage_id,
        subject=subject,
        policy=stage.policy.value,
        acting_agency=plan.agency_on(stage.acting_agencies[0], today).id,
        due_at=due_at(stage.due, cycle_start=cycle.starts_on, tz=plan_tz(plan)),
        waiter_ref=waiter_ref,
        created_at=now,
    )
    session.add(request)
    stage_row = (
        await session.execute(select(CycleStage).where(CycleStage.cycle_id == cycle.id, CycleStage.stage == stage_id))
    ).scalar()
    if stage_row is None:
        session.add(CycleStage(cycle_id=cycle.id, stage=stage_id, status=StageStatus.waiting.value, updated_at=now))
    await session.flush()

    new = []
    for official, role in officials.values():
        assignment_id = uuid.uuid4()
        assignment = Assignment(id=assignment_id, request_id=request.id, official_id=official.id, role=role,
                                token_hash=hash_token(derive_token(secret, assignment_id, 1)), token_generation=1,
                                expires_at=now + link_ttl, created_at=now)
        session.add(assignment)
        new.append(NewAssignment(assignment, official))
    await session.flush()
    await audit.append(
        session, actor="system", action="request.opened", entity="approval_request", entity_id=str(request.id),
        data={"cycle": f"{cycle.kind}/{cycle.period}", "stage": stage_id, "subject": subject,
              "assignees": sorted(officials), "due_at": request.due_at.isoformat()},
    )
    return OpenedRequest(request, cycle, new)


def plan_tz(plan: Plan) -> ZoneInfo:
    return ZoneInfo(plan.plan.timezone)


@dataclass(frozen=True)
class LinkView:
    assignment: Assignment
    request: ApprovalRequest
    cycle: Cycle
    others: list[Assignment]


async def find_live_assignment(session: AsyncSession, token: str, *, now: dt.datetime) -> Assignment:
    """The pending, unexpired assignment a token opens, or InvalidLink. Reads only."""
    if not well_formed(token):
        raise InvalidLink()
    digest = hash_token(token)
    assignment = (await session.execute(select(Assignment).where(Assignment.token_hash == digest))).scalar()
    if (
        assignment is None
        or not hmac.compare_digest(assignment.token_hash, digest)
        or assignment.status != AssignmentStatus.pending.value
        or assignment.expires_at <= now
    ):
        raise InvalidLink()
    return assignment


async def view_link(session: AsyncSession, token: str, *, now: dt.datetime) -> LinkView:
    """What the link page shows. Changes nothing."""
    assignment = await find_live_assignment(session, token, now=now)
    request = await session.get(ApprovalRequest, assignment.request_id)
    if request is None or request.status != RequestStatus.pending.value:
        raise InvalidLink()
    cycle = await session.get(Cycle, request.cycle_id)
    others = list(
        (await session.execute(select(Assignment).where(Assignment.request_id == request.id, Assignment.id != assignment.id)))
        .scalars()
    )
    return LinkView(assignment, request, cycle, others)


@dataclass(frozen=True)
class DecisionResult:
    decision: Decision
    request: ApprovalRequest
    settled: Outcome | None


async def decide(
    session: AsyncSession, *, token: str, outcome: Outcome, comment: str, now: dt.datetime
) -> DecisionResult:
    """Record one official's decision with a compare-and-set, and settle the request if the policy says so."""
    comment = comment.strip()
    if outcome in (Outcome.reject, Outcome.request_changes) and not comment:
        raise CommentRequired("a comment is required to reject or to request changes")
    if len(comment) > MAX_COMMENT:
        raise ValueError(f"comment longer than {MAX_COMMENT} characters")
    assignment = await find_live_assignment(session, token, now=now)

    claimed = await session.execute(
        update(Assignment)
        .where(Assignment.id == assignment.id, Assignment.status == AssignmentStatus.pending.value)
        .values(status=AssignmentStatus.decided.value)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise AlreadyDecided()
    request = await session.get(ApprovalRequest, assignment.request_id, populate_existing=True)
    if request.status != RequestStatus.pending.value:
        raise AlreadyDecided()

    decision = Decision(request_id=request.id, assignment_id=assignment.id, official_id=assignment.official_id,
                        outcome=outcome.value, comment=comment, decided_at=now)
    session.add(decision)
    await session.flush()

    made = (await session.execute(
        select(Decision.outcome).where(Decision.request_id == request.id).order_by(Decision.decided_at, Decision.id)
    )).scalars()
    assignees = (await session.execute(select(Assignment.id).where(
        Assignment.request_id == request.id, Assignment.status != AssignmentStatus.revoked.value))).scalars().all()
    settled = settle(Policy(request.policy), [Outcome(o) for o in made], len(assignees))
    if settled is not None:
        await settle_request(session, request=request, outcome=settled, now=now)
    await audit.append(
        session, actor=f"official:{assignment.official_id}", action="decision.recorded", entity="approval_request",
        entity_id=str(request.id),
        data={"outcome": outcome.value, "comment": comment, "assignment": str(assignment.id),
              "settled": settled.value if settled else None},
    )
    return DecisionResult(decision, request, settled)


async def settle_request(session: AsyncSession, *, request: ApprovalRequest, outcome: Outcome, now: dt.datetime) -> None:
    """Move a pending request to its outcome (compare-and-set) and close its other links."""
    moved = await session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == request.id, ApprovalRequest.status == RequestStatus.pending.value)
        .values(status=OUTCOME_TO_STATUS[outcome].value, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:
        raise AlreadyDecided()
    await session.execute(
        update(Assignment)
        .where(Assignment.request_id == request.id, Assignment.status == AssignmentStatus.pending.value)
        .values(status=AssignmentStatus.closed.value)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(request)


async def request_status(session: AsyncSession, request_id: uuid.UUID) -> RequestStatus:
    request = await session.get(ApprovalRequest, request_id, populate_existing=True)
    return RequestStatus(request.status)


STAGE_STATUS_FOR = {
    RequestStatus.approved: StageStatus.done,
    RequestStatus.rejected: StageStatus.rejected,
    RequestStatus.changes_requested: StageStatus.changes_requested,
}


async def record_stage_result(session: AsyncSession, *, request_id: uuid.UUID, now: dt.datetime) -> StageStatus:
    """Write the stage's status from its settled request (idempotent: a re-run writes the same)."""
    request = await session.get(ApprovalRequest, request_id, populate_existing=True)
    status = STAGE_STATUS_FOR[RequestStatus(request.status)]
    stage = (await session.execute(
        select(CycleStage).where(CycleStage.cycle_id == request.cycle_id, CycleStage.stage == request.stage)
    )).scalar_one()
    if stage.status != status.value:
        stage.status = status.value
        stage.updated_at = now
        await audit.append(session, actor="system", action="stage.recorded", entity="cycle_stage",
                           entity_id=str(stage.id), data={"stage": request.stage, "status": status.value})
    await session.flush()
    return status


async def requests_awaiting_resume(session: AsyncSession, limit: int = 100) -> list[ApprovalRequest]:
    return list((await session.execute(
        select(ApprovalRequest)
        .where(ApprovalRequest.status != RequestStatus.pending.value, ApprovalRequest.waiter_ref.is_not(None),
               ApprovalRequest.resumed_at.is_(None))
        .limit(limit)
    )).scalars())


async def mark_resumed(session: AsyncSession, request_id: uuid.UUID, *, now: dt.datetime) -> None:
    await session.execute(
        update(ApprovalRequest).where(ApprovalRequest.id == request_id, ApprovalRequest.resumed_at.is_(None))
        .values(resumed_at=now).execution_options(synchronize_session=False)
    )
