"""Recording decisions exactly once, and settling requests by their policy.

Every state change is a compare-and-set (`UPDATE ... WHERE status = 'pending'`) in
the caller's transaction: a double click, two approvers at once, or a decision
racing the sweep each end with one outcome; the loser gets AlreadyDecided.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from enum import Enum

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from approvals import audit
from approvals.clock.deadlines import local_day
from approvals.db import core, table_of
from approvals.errors import InvalidInput, InvalidLink, KehoachError, Refused
from approvals.models import ApprovalRequest, Assignment, Cycle, Decision, SubmissionLink
from approvals.people.directory import resolvable
from approvals.plan.schema import Plan
from approvals.plan.stages import Policy
from approvals.routing.link_views import ASSIGNMENT_VIEW, LINK_VIEW, REPLY_VIEW, open_link, open_reply
from approvals.routing.policy import settle
from approvals.routing.stages import after_settled
from approvals.routing.steps import AlreadyDecided, NewAssignment, issue_token, stage_of
from approvals.routing.submissions import SubmissionAsked, SubmissionUnrouted, ask_resubmission
from approvals.statuses import OUTCOME_TO_STATUS, AssignmentStatus, LinkStatus, Outcome, RequestStatus

MAX_COMMENT = 4000  # characters of a decision's comment


class CommentRequired(InvalidInput):
    """Rejecting or sending back needs a comment."""


class CommentTooLong(InvalidInput):
    """A comment past MAX_COMMENT characters."""


class NotYours(Refused):
    """A step chosen in an official's queue that was never asked of that official."""


class AcknowledgeOnly(InvalidInput):
    """A step that is acknowledged (what was requested, not ordered: the Board's guidance) is not
    rejected: it is acknowledged, or sent back to be made clearer."""


COUNTED = (
    AssignmentStatus.waiting.value,
    AssignmentStatus.pending.value,
    AssignmentStatus.decided.value,
    AssignmentStatus.closed.value,
)


_STILL_ASKED = (AssignmentStatus.pending.value, AssignmentStatus.waiting.value)

# Built once (every decision runs them): the link's assignment with its request, locked, and its
# cycle; and the request's assignees, each with the decision they made.
_LINK = LINK_VIEW.with_for_update(of=ApprovalRequest).execution_options(populate_existing=True)
_REPLY = REPLY_VIEW.with_for_update(of=ApprovalRequest).execution_options(populate_existing=True)
_QUEUED = ASSIGNMENT_VIEW.with_for_update(of=ApprovalRequest).execution_options(populate_existing=True)
_CLAIM = (
    update(Assignment)
    .where(
        Assignment.id == bindparam("assignment_id"),
        Assignment.status == AssignmentStatus.pending.value,
        Assignment.token_hash == bindparam("digest"),
    )
    .values(status=AssignmentStatus.decided.value)
    .execution_options(synchronize_session=False, preserve_rowcount=True)
)
_SETTLE = (
    update(ApprovalRequest)
    .where(
        ApprovalRequest.id == bindparam("request_id"),
        ApprovalRequest.status.in_([s.value for s in RequestStatus if s.open]),
    )
    .values(status=bindparam("new_status"), decided_at=bindparam("at"))
    .execution_options(synchronize_session=False, preserve_rowcount=True)
)
_INSERT_DECISION = insert(table_of(Decision.__table__))
_DECISION_COLUMNS = tuple(c.key for c in Decision.__table__.columns)
_ASSIGNEES = (
    select(
        Assignment.official_id,
        Assignment.status,
        Assignment.position,
        Decision.outcome,
        Decision.decided_at,
        Decision.id.label("decision_id"),
    )
    .outerjoin(Decision, Decision.assignment_id == Assignment.id)
    .where(Assignment.request_id == bindparam("request_id"))
)


class Channel(str, Enum):
    """How the decision came, as the audit row records it."""

    link = "link"  # the page's form, from the emailed link
    email_reply = "email reply"  # a reply to the email, to its reply address
    queue = "queue"  # the official's queue (a bulk decision), its session made from a live link


@dataclass(frozen=True)
class DecisionResult:
    decision: Decision
    request: ApprovalRequest
    settled: Outcome | None
    cycle: Cycle
    activated: list[NewAssignment] = field(default_factory=list)  # next in a sequence: email them
    closed: list[str] = field(default_factory=list)  # officials whose pending link the outcome closed
    # Sent back for changes: the submitter's resubmission link (or nobody to ask), to email now.
    asked: SubmissionAsked | SubmissionUnrouted | None = None
    channel: Channel = Channel.link


async def decide(
    session: AsyncSession,
    *,
    token: str | None = None,
    reply_token: str | None = None,
    message_id: str | None = None,
    queued: Queued | None = None,
    outcome: Outcome,
    comment: str,
    now: dt.datetime,
    plan: Plan | None = None,
    secret: bytes | None = None,
    link_ttl: dt.timedelta = dt.timedelta(days=60),
) -> DecisionResult:
    """Record one official's decision and settle the request if its policy says so: from the page
    (the link's `token`), from a reply (its address's `reply_token`, and the reply's `message_id`
    for the audit row) or from the official's queue (`queued`: an assignment and the official the
    queue's session names), exactly one of them, by the same rules."""
    if sum(way is not None for way in (token, reply_token, queued)) != 1:
        raise KehoachError("a decision is made with a link's token, a reply's token or from a queue, exactly one")
    channel = Channel.link if token is not None else Channel.email_reply if reply_token is not None else Channel.queue
    comment = comment.strip()
    if outcome in (Outcome.reject, Outcome.request_changes) and not comment:
        raise CommentRequired("a comment is required to reject or to request changes")
    if len(comment) > MAX_COMMENT:
        raise CommentTooLong(f"comment longer than {MAX_COMMENT} characters")
    # The request is locked: every change to a request and its assignments takes this lock first.
    if token is not None:
        assignment, request, cycle = await open_link(session, token, now=now, statement=_LINK)
    elif reply_token is not None:
        assignment, request, cycle = await open_reply(session, reply_token, now=now, statement=_REPLY)
    else:
        assert queued is not None  # one of the three, checked above
        assignment, request, cycle = await _open_queued(session, queued, now=now)
    if request.status != RequestStatus.pending.value:
        raise AlreadyDecided()
    # Fail closed: the decider must still be in the directory, and must not be the requester
    # (directly, or as the holder they decide for).
    if plan is not None and resolvable(plan, assignment.official_id, local_day(plan, now)) is None:
        raise Refused(f"official '{assignment.official_id}' cannot be resolved in the directory")
    if request.requested_by and request.requested_by in (assignment.official_id, assignment.on_behalf_of):
        raise Refused("the official who submitted a step cannot approve it")
    if outcome is Outcome.reject and plan is not None and stage_of(plan, cycle.kind, request.stage).acknowledge:
        raise AcknowledgeOnly(f"stage '{request.stage}' is acknowledged, not rejected")

    claimed = await core(session, _CLAIM, {"assignment_id": assignment.id, "digest": assignment.token_hash})
    if claimed.rowcount != 1:
        raise AlreadyDecided()

    decision = Decision(
        id=uuid.uuid4(),
        request_id=request.id,
        assignment_id=assignment.id,
        official_id=assignment.official_id,
        on_behalf_of=assignment.on_behalf_of,
        outcome=outcome.value,
        comment=comment,
        decided_at=now,
    )
    # A Core insert of the row (the object is what the caller reads, not added to the session).
    await core(session, _INSERT_DECISION, {column: getattr(decision, column) for column in _DECISION_COLUMNS})

    # Every assignee with the decision they made, in one round trip: the decisions so far (in
    # the order made), who counts, and who was asked and has not answered. The request's lock
    # keeps them as they are until the commit.
    rows = (await core(session, _ASSIGNEES, {"request_id": request.id})).all()
    made = [
        Outcome(row.outcome)
        for row in sorted((r for r in rows if r.outcome is not None), key=lambda r: (r.decided_at, r.decision_id))
    ]
    assignees = sum(row.status in COUNTED for row in rows)
    settled = settle(Policy(request.policy), made, assignees, request.quorum)
    activated: list[NewAssignment] = []
    closed: list[str] = []
    asked = None
    if settled is not None:
        closed = await settle_request(
            session,
            request=request,
            outcome=settled,
            now=now,
            left=[(row.official_id, row.status) for row in sorted(rows, key=lambda r: r.position)],
        )
        if settled is Outcome.request_changes and plan is not None and secret is not None:
            # The unit is asked to resubmit in this same transaction: the step never waits on
            # a run to be woken for it, and a decision is never recorded without its email.
            asked = await ask_resubmission(
                session, plan=plan, secret=secret, request_id=request.id, now=now, link_ttl=link_ttl
            )
    elif Policy(request.policy) is Policy.sequence and outcome is Outcome.approve:
        activated = await _activate_next(session, request, plan=plan, secret=secret)
    await audit.append(
        session,
        actor=f"official:{assignment.official_id}",
        action="decision.recorded",
        entity="approval_request",
        entity_id=str(request.id),
        data={
            "outcome": outcome.value,
            "comment": comment,
            "assignment": str(assignment.id),
            "official": assignment.official_id,
            "on_behalf_of": assignment.on_behalf_of,
            "settled": settled.value if settled else None,
            "channel": channel.value,
            **({"message_id": message_id} if channel is Channel.email_reply else {}),
        },
    )
    return DecisionResult(decision, request, settled, cycle, activated, closed, asked, channel)


@dataclass(frozen=True)
class Queued:
    """A step decided from an official's queue: its assignment, and the official whose queue it is."""

    assignment_id: uuid.UUID
    official_id: str


async def _open_queued(
    session: AsyncSession, queued: Queued, *, now: dt.datetime
) -> tuple[Assignment, ApprovalRequest, Cycle]:
    """The assignment a queue names, its request locked as a link's is: NotYours when it was
    never asked of the queue's official, AlreadyDecided when they decided it already (a second
    submit), InvalidLink when it is no longer theirs to decide (closed, reassigned, expired)."""
    found = (await session.execute(_QUEUED, {"assignment_id": queued.assignment_id})).first()
    if found is None or found[0].official_id != queued.official_id:
        raise NotYours(f"assignment {queued.assignment_id} is not asked of '{queued.official_id}'")
    assignment, request, cycle = found
    if assignment.status == AssignmentStatus.decided.value:
        raise AlreadyDecided()
    if assignment.status != AssignmentStatus.pending.value or assignment.expires_at <= now:
        raise InvalidLink()
    return assignment, request, cycle


async def _activate_next(
    session: AsyncSession, request: ApprovalRequest, *, plan: Plan | None, secret: bytes | None
) -> list[NewAssignment]:
    """In a sequence, the next assignee is asked only once the previous one approved."""
    if plan is None or secret is None:
        raise KehoachError("a sequence needs the plan and the link key to ask the next approver")
    following = (
        await session.execute(
            select(Assignment)
            .where(Assignment.request_id == request.id, Assignment.status == AssignmentStatus.waiting.value)
            .order_by(Assignment.position)
            .limit(1)
        )
    ).scalar()
    if following is None:
        return []
    official = plan.official(following.official_id)
    if official is None:  # gone from the plan file: nobody to email the link to
        raise Refused(f"official '{following.official_id}', next in the sequence, is no longer in the plan")
    issue_token(following, secret, following.token_generation + 1)
    following.status = AssignmentStatus.pending.value
    await session.flush()
    return [NewAssignment(following, official)]


async def settle_request(
    session: AsyncSession,
    *,
    request: ApprovalRequest,
    outcome: Outcome | RequestStatus,
    now: dt.datetime,
    left: list[tuple[str, str]] | None = None,
) -> list[str]:
    """Move an open request (pending, or still awaiting its submission when it expires) to its
    outcome (compare-and-set) and close its other links, submission links included. Returns
    the officials whose pending links it closed (they were asked and had not answered).

    `left` is every assignee's (official, status) in position order when the caller has just
    read them under the request's lock (a decision): nothing then needs reading again, and
    a pending request has no submission link left open (its unit's was used to submit it)."""
    was_pending = request.status == RequestStatus.pending.value
    status = outcome if isinstance(outcome, RequestStatus) else OUTCOME_TO_STATUS[outcome]
    moved = await core(session, _SETTLE, {"request_id": request.id, "new_status": status.value, "at": now})
    if moved.rowcount != 1:
        raise AlreadyDecided()
    # Who was asked and had not answered: their deadline is off their calendar now.
    if left is None:
        left = list(
            (
                await session.execute(
                    select(Assignment.official_id, Assignment.status)
                    .where(Assignment.request_id == request.id)
                    .order_by(Assignment.position)
                )
            ).all()
        )
    closed = [official for official, status in left if status == AssignmentStatus.pending.value]
    if any(status in _STILL_ASKED for _official, status in left):
        await session.execute(
            update(Assignment)
            .where(Assignment.request_id == request.id, Assignment.status.in_(_STILL_ASKED))
            .values(status=AssignmentStatus.closed.value)
            .execution_options(synchronize_session=False)
        )
    if not (was_pending and left):
        await session.execute(
            update(SubmissionLink)
            .where(SubmissionLink.request_id == request.id, SubmissionLink.status == LinkStatus.pending.value)
            .values(status=LinkStatus.closed.value)
            .execution_options(synchronize_session=False)
        )
    # The row now holds what the update wrote: no need to read it back.
    set_committed_value(request, "status", status.value)
    set_committed_value(request, "decided_at", now)
    await after_settled(session, request, now=now)
    return closed


__all__ = ["Channel", "DecisionResult", "InvalidLink", "NotYours", "Queued", "decide", "settle_request"]
