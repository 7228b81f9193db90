"""Recording decisions exactly once, and settling requests by their policy.

Every state change is a compare-and-set (`UPDATE ... WHERE status = 'pending'`) in
the caller's transaction: a double click, two approvers at once, or a decision
racing the sweep each end with one outcome; the loser gets AlreadyDecided.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from approvals import audit
from approvals.directory import resolvable
from approvals.models import (
    OUTCOME_TO_STATUS,
    ApprovalRequest,
    Assignment,
    AssignmentStatus,
    Cycle,
    Decision,
    Outcome,
    RequestStatus,
    SubmissionLink,
)
from approvals.plan.schema import Plan, Policy
from approvals.policy import settle
from approvals.stages import after_settled
from approvals.submissions import SubmissionAsked, SubmissionUnrouted, ask_resubmission
from approvals.requests import (
    MAX_COMMENT,
    AcknowledgeOnly,
    AlreadyDecided,
    CommentRequired,
    InvalidLink,
    NewAssignment,
    Refused,
    find_live_assignment,
    issue_token,
    local_day,
    lock_request,
    stage_of,
)

COUNTED = (AssignmentStatus.waiting.value, AssignmentStatus.pending.value, AssignmentStatus.decided.value,
           AssignmentStatus.closed.value)


@dataclass(frozen=True)
class DecisionResult:
    decision: Decision
    request: ApprovalRequest
    settled: Outcome | None
    activated: list[NewAssignment] = field(default_factory=list)  # next in a sequence: email them
    closed: list[str] = field(default_factory=list)  # officials whose pending link the outcome closed
    # Sent back for changes: the submitter's resubmission link (or nobody to ask), to email now.
    asked: SubmissionAsked | SubmissionUnrouted | None = None


async def decide(
    session: AsyncSession, *, token: str, outcome: Outcome, comment: str, now: dt.datetime,
    plan: Plan | None = None, secret: bytes | None = None, link_ttl: dt.timedelta = dt.timedelta(days=60),
) -> DecisionResult:
    """Record one official's decision and settle the request if its policy says so."""
    comment = comment.strip()
    if outcome in (Outcome.reject, Outcome.request_changes) and not comment:
        raise CommentRequired("a comment is required to reject or to request changes")
    if len(comment) > MAX_COMMENT:
        raise ValueError(f"comment longer than {MAX_COMMENT} characters")
    assignment = await find_live_assignment(session, token, now=now)
    request = await lock_request(session, assignment.request_id)
    if request.status != RequestStatus.pending.value:
        raise AlreadyDecided()
    if plan is not None:
        # Fail closed: the decider must still be in the directory, and must not be the requester
        # (directly, or as the holder they decide for).
        if resolvable(plan, assignment.official_id, local_day(plan, now)) is None:
            raise Refused(f"official '{assignment.official_id}' cannot be resolved in the directory")
    if request.requested_by and request.requested_by in (assignment.official_id, assignment.on_behalf_of):
        raise Refused("the official who submitted a step cannot approve it")
    if outcome is Outcome.reject and plan is not None:
        cycle_kind = (await session.execute(select(Cycle.kind).where(Cycle.id == request.cycle_id))).scalar_one()
        if stage_of(plan, cycle_kind, request.stage).acknowledge:
            raise AcknowledgeOnly(f"stage '{request.stage}' is acknowledged, not rejected")

    claimed = await session.execute(
        update(Assignment)
        .where(Assignment.id == assignment.id, Assignment.status == AssignmentStatus.pending.value,
               Assignment.token_hash == assignment.token_hash)
        .values(status=AssignmentStatus.decided.value)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise AlreadyDecided()

    decision = Decision(request_id=request.id, assignment_id=assignment.id, official_id=assignment.official_id,
                        on_behalf_of=assignment.on_behalf_of, outcome=outcome.value, comment=comment, decided_at=now)
    session.add(decision)
    await session.flush()

    # The decisions so far and the assignees who count, in one round trip.
    counted = (select(func.count(Assignment.id)).where(Assignment.request_id == request.id,
                                                        Assignment.status.in_(COUNTED)).scalar_subquery())
    rows = (await session.execute(
        select(Decision.outcome, counted).where(Decision.request_id == request.id)
        .order_by(Decision.decided_at, Decision.id))).all()
    made = [Outcome(o) for o, _ in rows]
    assignees = rows[0][1]
    settled = settle(Policy(request.policy), made, assignees, request.quorum)
    activated: list[NewAssignment] = []
    closed: list[str] = []
    asked = None
    if settled is not None:
        closed = await settle_request(session, request=request, outcome=settled, now=now)
        if settled is Outcome.request_changes and plan is not None and secret is not None:
            # The unit is asked to resubmit in this same transaction: the step never waits on
            # a run to be woken for it, and a decision is never recorded without its email.
            asked = await ask_resubmission(session, plan=plan, secret=secret, request_id=request.id, now=now,
                                           link_ttl=link_ttl)
    elif Policy(request.policy) is Policy.sequence and outcome is Outcome.approve:
        activated = await _activate_next(session, request, plan=plan, secret=secret)
    await audit.append(
        session, actor=f"official:{assignment.official_id}", action="decision.recorded", entity="approval_request",
        entity_id=str(request.id),
        data={"outcome": outcome.value, "comment": comment, "assignment": str(assignment.id),
              "official": assignment.official_id, "on_behalf_of": assignment.on_behalf_of,
              "settled": settled.value if settled else None},
    )
    return DecisionResult(decision, request, settled, activated, closed, asked)


async def _activate_next(session: AsyncSession, request: ApprovalRequest, *, plan: Plan | None,
                         secret: bytes | None) -> list[NewAssignment]:
    """In a sequence, the next assignee is asked only once the previous one approved."""
    if plan is None or secret is None:
        raise ValueError("a sequence needs the plan and the link key to ask the next approver")
    following = (await session.execute(
        select(Assignment).where(Assignment.request_id == request.id,
                                 Assignment.status == AssignmentStatus.waiting.value)
        .order_by(Assignment.position).limit(1))).scalar()
    if following is None:
        return []
    issue_token(following, secret, following.token_generation + 1)
    following.status = AssignmentStatus.pending.value
    await session.flush()
    return [NewAssignment(following, plan.official(following.official_id))]


async def settle_request(session: AsyncSession, *, request: ApprovalRequest, outcome: Outcome | RequestStatus,
                         now: dt.datetime) -> list[str]:
    """Move an open request (pending, or still awaiting its submission when it expires) to its
    outcome (compare-and-set) and close its other links, submission links included. Returns
    the officials whose pending links it closed (they were asked and had not answered)."""
    status = outcome if isinstance(outcome, RequestStatus) else OUTCOME_TO_STATUS[outcome]
    moved = await session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == request.id,
               ApprovalRequest.status.in_([s.value for s in RequestStatus if s.open]))
        .values(status=status.value, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:
        raise AlreadyDecided()
    # Who was asked and had not answered: their deadline is off their calendar now.
    closed = list((await session.execute(
        select(Assignment.official_id).where(Assignment.request_id == request.id,
                                             Assignment.status == AssignmentStatus.pending.value)
        .order_by(Assignment.position))).scalars())
    await session.execute(
        update(Assignment)
        .where(Assignment.request_id == request.id,
               Assignment.status.in_([AssignmentStatus.pending.value, AssignmentStatus.waiting.value]))
        .values(status=AssignmentStatus.closed.value)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(SubmissionLink)
        .where(SubmissionLink.request_id == request.id, SubmissionLink.status == "pending")
        .values(status="closed")
        .execution_options(synchronize_session=False)
    )
    # The row now holds what the update wrote: no need to read it back.
    set_committed_value(request, "status", status.value)
    set_committed_value(request, "decided_at", now)
    await after_settled(session, request, now=now)
    return closed


__all__ = ["DecisionResult", "InvalidLink", "decide", "settle_request"]
