"""What coordinators do by hand: remind, escalate, reassign, cancel a cycle, revoke a
delegation. Each locks the requests it changes (`lock_request`) and only flushes; the caller
queues the emails for what it returns, in the same transaction."""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.coordination.reads import CYCLE_CANCELLED, cancelled_cycles
from approvals.db import row_of
from approvals.errors import Conflict, NotFound, Refused
from approvals.models import ApprovalRequest, Assignment, Cycle, CycleStage, Delegation, SubmissionLink
from approvals.people import delegations
from approvals.plan.schema import Plan
from approvals.routing.decisions import settle_request
from approvals.routing.stages import ANY_STAGE, WakeReason, enqueue_wake
from approvals.routing.steps import AlreadyDecided, NewAssignment, lock_request
from approvals.routing.steps import reassign as reassign_assignment
from approvals.routing.submissions import SubmissionAsked, ask_unasked, pending_link, remind_submitter
from approvals.running import chasing
from approvals.running.chasing import rotate_links, superiors_for
from approvals.statuses import AssignmentStatus, LinkStatus, RequestStatus, StageStatus


@dataclass(frozen=True)
class Acted:
    """An action on one request, and who must now be emailed a (new) link."""

    request: ApprovalRequest
    cycle: Cycle
    notify: list[NewAssignment]
    submission: SubmissionAsked | None = None  # a unit that has not submitted: its form link again


async def _locked_pending(session: AsyncSession, request_id: uuid.UUID) -> tuple[ApprovalRequest, Cycle]:
    request = await lock_request(session, request_id)
    if request is None:
        raise NotFound(f"no request {request_id}")
    if request.status != RequestStatus.pending.value:
        raise AlreadyDecided()
    return request, await row_of(session, Cycle, request.cycle_id)


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
    return Acted(request, await row_of(session, Cycle, request.cycle_id), [], asked)


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
    stage = plan.stage(cycle.kind, request.stage)
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
    request = await row_of(session, ApprovalRequest, new.assignment.request_id)
    cycle = await row_of(session, Cycle, request.cycle_id)
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
    expired: list[ApprovalRequest] = []
    closed: dict[uuid.UUID, list[str]] = {}
    for request_id in pending_ids:
        request = await lock_request(session, request_id)
        assert request is not None, "a request of the cycle, just listed, exists"
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
            SubmissionLink.status == LinkStatus.pending.value,
            SubmissionLink.request_id.in_(select(ApprovalRequest.id).where(ApprovalRequest.cycle_id == cycle.id)),
        )
        .values(status=LinkStatus.closed.value)
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
