"""The sweep: reminders before the due time, escalation or expiry at it, expiry after
an escalation's grace. It changes state with the same compare-and-set as a
decision, so a decision and the sweep can never both win; nothing is ever
approved because time passed.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.clock.deadlines import clock_of, local_day, reminders_passed
from approvals.db import Database, row_of, rowcount
from approvals.models import ApprovalRequest, Assignment, Cycle
from approvals.plan.people import Official
from approvals.plan.schema import Plan
from approvals.plan.stages import Stage, TimeoutPolicy
from approvals.routing.decisions import settle_request
from approvals.routing.stages import set_stage_status
from approvals.routing.steps import AlreadyDecided, NewAssignment, StageNotInPlan, lock_request, stage_of
from approvals.routing.submissions import SubmissionAsked, pending_link, remind_submitter
from approvals.running.chasing import escalate, rotate_links
from approvals.statuses import AssignmentStatus, RequestStatus, StageStatus

log = logging.getLogger("kehoach.sweep")
OPEN = [s.value for s in RequestStatus if s.open]


class EventKind(str, Enum):
    reminder = "reminder"
    escalation = "escalation"
    expired = "expired"
    overdue = "overdue"  # keep_waiting: nothing changes hands, coordinators should know


@dataclass(frozen=True)
class SweepEvent:
    kind: EventKind
    request: ApprovalRequest
    cycle: Cycle
    stage: Stage
    notify: list[NewAssignment] = field(default_factory=list)  # who gets a (new) link
    closed: list[str] = field(default_factory=list)  # officials whose pending link an expiry closed
    submission: SubmissionAsked | None = None  # a reminder to submit: the unit's fresh link


OnEvent = Callable[[AsyncSession, SweepEvent], Awaitable[None]]


async def _cas_request(
    session: AsyncSession, request: ApprovalRequest, condition: ColumnElement[bool], **values: Any
) -> None:
    moved = await session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == request.id, ApprovalRequest.status.in_(OPEN), condition)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if rowcount(moved) != 1:
        raise AlreadyDecided()
    await session.refresh(request)


class DueStep(str, Enum):
    """What the sweep owes an open request at a moment."""

    grace_ended = "grace_ended"  # escalated, and the superior's grace has ended: it expires
    due = "due"  # its due time has passed: the stage's timeout policy
    reminder = "reminder"  # a reminder has fallen since the last one sent


def due_step(plan: Plan, request: ApprovalRequest, cycle: Cycle, stage: Stage, now: dt.datetime) -> DueStep | None:
    """The step the sweep owes `request` at `now`, if any. A pass reads every open request this
    way without a lock, and locks only those with a step due; under the lock, `sweep_request`
    asks again of the row as it is then."""
    if request.status not in OPEN:
        return None
    submission = request.status == RequestStatus.awaiting_submission.value
    if not submission and request.expires_at is not None and now >= request.expires_at:
        return DueStep.grace_ended
    if now >= request.due_at and request.escalated_at is None:
        return DueStep.due
    if now < request.due_at and reminders_passed(stage, request, now, clock_of(plan, cycle)) > request.reminders_sent:
        return DueStep.reminder
    return None


async def sweep_request(
    session: AsyncSession, *, plan: Plan, secret: bytes, request_id: uuid.UUID, now: dt.datetime, link_ttl: dt.timedelta
) -> SweepEvent | None:
    """At most one step for one request: expire, escalate (or time out), or remind."""
    request = await lock_request(session, request_id)
    if request is None or request.status not in OPEN:
        return None
    cycle = await row_of(session, Cycle, request.cycle_id)
    stage = stage_of(plan, cycle.kind, request.stage)
    step = due_step(plan, request, cycle, stage, now)
    submission = request.status == RequestStatus.awaiting_submission.value
    if step is DueStep.grace_ended:
        return await _expire(session, request, cycle, stage, now, reason="escalation grace ended")
    if step is DueStep.due:
        policy = stage.timeout_policy
        if policy is TimeoutPolicy.expire:
            reason = "nothing submitted by the due time" if submission else "due time passed"
            return await _expire(session, request, cycle, stage, now, reason=reason)
        if policy is TimeoutPolicy.proceed:
            return await _lapse(session, request, cycle, stage, now)
        if policy is TimeoutPolicy.escalate and not submission:  # a unit that never submitted has nothing to decide
            return await _escalate(session, plan, secret, request, cycle, stage, now, link_ttl)
        return await _overdue(session, request, cycle, stage, now, policy)
    if step is DueStep.reminder:
        passed = reminders_passed(stage, request, now, clock_of(plan, cycle))
        if submission:
            return await _remind_submitter(session, plan, secret, request, cycle, stage, now, passed)
        return await _remind(session, secret, request, cycle, stage, now, passed, plan)
    return None


async def _overdue(
    session: AsyncSession,
    request: ApprovalRequest,
    cycle: Cycle,
    stage: Stage,
    now: dt.datetime,
    policy: TimeoutPolicy,
) -> SweepEvent:
    """Past its due time, the step stays open (nobody decides in its place). The stage's superior
    (escalate_to) hears of it in the digest after the pass (`overdue_notices`); with no superior
    it is told at once: the coordinators see it on the dashboard."""
    await _cas_request(
        session,
        request,
        ApprovalRequest.escalated_at.is_(None),
        escalated_at=now,
        told_at=None if stage.escalate_to else now,
    )
    await audit.append(
        session,
        actor="system",
        action="request.overdue",
        entity="approval_request",
        entity_id=str(request.id),
        data={"policy": policy.value, "status": request.status},
    )
    return SweepEvent(EventKind.overdue, request, cycle, stage)


@dataclass(frozen=True)
class OverdueBranch:
    request: ApprovalRequest
    waiting_on: list[str]  # the officer asked to submit, or the approvers who have not decided


@dataclass(frozen=True)
class OverdueNotice:
    """One email to one superior: every branch of one stage past its due time that they have not
    heard of (a report's deadline tells the PPC once, not once per unit)."""

    submission: bool  # the branches wait for their units' submissions, else for decisions
    cycle: Cycle
    stage: Stage
    official: Official
    branches: list[OverdueBranch]


async def overdue_notices(session: AsyncSession, *, plan: Plan, now: dt.datetime) -> list[OverdueNotice]:
    """The overdue open steps whose stage's superior has not heard of them, grouped by stage and
    superior, each marked as told and audited (`submission.missing`, `request.overdue_told`) in
    the caller's transaction, which queues the emails: told exactly once. Rows another sweep is
    telling are skipped (SKIP LOCKED on PostgreSQL; SQLite runs one writer at a time)."""
    rows = list(
        (
            await session.execute(
                select(ApprovalRequest)
                .where(
                    ApprovalRequest.escalated_at.is_not(None),
                    ApprovalRequest.told_at.is_(None),
                    ApprovalRequest.status.in_(OPEN),
                )
                .order_by(ApprovalRequest.cycle_id, ApprovalRequest.stage, ApprovalRequest.subject)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    day = local_day(plan, now)
    cycles: dict[uuid.UUID, Cycle] = {}
    notices: dict[tuple[bool, uuid.UUID, str, str], OverdueNotice] = {}
    for request in rows:
        cycle = cycles.get(request.cycle_id) or await row_of(session, Cycle, request.cycle_id)
        cycles[cycle.id] = cycle
        try:
            stage = stage_of(plan, cycle.kind, request.stage)
        except StageNotInPlan:  # a stage gone from the plan: left for a coordinator, never blocks the others
            log.warning("overdue request %s is of a stage the plan no longer has", request.id)
            continue
        told = plan.holders(stage.escalate_to, day, unit=request.subject or None) if stage.escalate_to else []
        submission = request.status == RequestStatus.awaiting_submission.value
        if submission:
            link = await pending_link(session, request.id, now)
            action, waiting = "submission.missing", [link.official_id] if link else []
        else:
            action = "request.overdue_told"
            waiting = list(
                (
                    await session.execute(
                        select(Assignment.official_id)
                        .where(Assignment.request_id == request.id, Assignment.status == AssignmentStatus.pending.value)
                        .order_by(Assignment.position)
                    )
                ).scalars()
            )
        request.told_at = now
        await audit.append(
            session,
            actor="system",
            action=action,
            entity="approval_request",
            entity_id=str(request.id),
            data={"told": [o.id for o in told]},
        )
        for official in told:
            key = (submission, cycle.id, stage.id, official.id)
            notice = notices.setdefault(key, OverdueNotice(submission, cycle, stage, official, []))
            notice.branches.append(OverdueBranch(request, waiting))
    await session.flush()
    return list(notices.values())


async def _lapse(
    session: AsyncSession, request: ApprovalRequest, cycle: Cycle, stage: Stage, now: dt.datetime
) -> SweepEvent:
    """Nothing came by the due time, and the plan says the chain goes on without the stage (the
    Propaganda Board is requested, never ordered): the step expires, and the stage is recorded
    as gone on without, with why."""
    event = await _expire(session, request, cycle, stage, now, reason="nothing by the due time: the chain goes on")
    await set_stage_status(session, cycle_id=cycle.id, stage=stage.id, status=StageStatus.lapsed, now=now)
    return event


async def _remind_submitter(
    session: AsyncSession,
    plan: Plan,
    secret: bytes,
    request: ApprovalRequest,
    cycle: Cycle,
    stage: Stage,
    now: dt.datetime,
    passed: int,
) -> SweepEvent | None:
    """A step still waiting for its unit's submission: the unit's officer is reminded with a
    fresh form link (the last one stops working). At the due time such a step expires if the
    stage says so, else it is overdue: coordinators see it, and the stage's superior
    (escalate_to) is told which unit has not submitted (`overdue_notices`)."""
    await _cas_request(
        session, request, ApprovalRequest.reminders_sent == request.reminders_sent, reminders_sent=passed
    )
    asked = await remind_submitter(session, plan=plan, secret=secret, request=request, now=now)
    await audit.append(
        session,
        actor="system",
        action="submission.reminded",
        entity="approval_request",
        entity_id=str(request.id),
        data={"reminder": passed, "to": asked.official.id if asked else None},
    )
    if asked is None:
        return None
    return SweepEvent(EventKind.reminder, request, cycle, stage, submission=asked)


async def _expire(
    session: AsyncSession, request: ApprovalRequest, cycle: Cycle, stage: Stage, now: dt.datetime, *, reason: str
) -> SweepEvent:
    closed = await settle_request(session, request=request, outcome=RequestStatus.expired, now=now)
    await audit.append(
        session,
        actor="system",
        action="request.expired",
        entity="approval_request",
        entity_id=str(request.id),
        data={"reason": reason},
    )
    return SweepEvent(EventKind.expired, request, cycle, stage, closed=closed)


async def _escalate(
    session: AsyncSession,
    plan: Plan,
    secret: bytes,
    request: ApprovalRequest,
    cycle: Cycle,
    stage: Stage,
    now: dt.datetime,
    link_ttl: dt.timedelta,
) -> SweepEvent:
    notify = await escalate(
        session, plan=plan, secret=secret, request=request, stage=stage, actor="system", now=now, link_ttl=link_ttl
    )
    return SweepEvent(EventKind.escalation, request, cycle, stage, notify)


async def _remind(
    session: AsyncSession,
    secret: bytes,
    request: ApprovalRequest,
    cycle: Cycle,
    stage: Stage,
    now: dt.datetime,
    passed: int,
    plan: Plan,
) -> SweepEvent:
    await _cas_request(
        session, request, ApprovalRequest.reminders_sent == request.reminders_sent, reminders_sent=passed
    )
    notify = await rotate_links(session, plan=plan, secret=secret, request=request, now=now)  # old links stop working
    await audit.append(
        session,
        actor="system",
        action="request.reminded",
        entity="approval_request",
        entity_id=str(request.id),
        data={"reminder": passed, "to": [n.official.id for n in notify]},
    )
    return SweepEvent(EventKind.reminder, request, cycle, stage, notify)


async def sweep(
    db: Database,
    *,
    plan: Plan,
    secret: bytes,
    now: dt.datetime,
    link_ttl: dt.timedelta,
    on_event: OnEvent | None = None,
) -> list[SweepEvent]:
    """One pass over open requests, each with a step due in its own transaction with its emails
    (`on_event`); a request with nothing due is read, not locked."""
    async with db.sessions() as session:
        rows = (
            await session.execute(
                select(ApprovalRequest, Cycle)
                .join(Cycle, Cycle.id == ApprovalRequest.cycle_id)
                .where(ApprovalRequest.status.in_(OPEN))
                .order_by(ApprovalRequest.due_at)
            )
        ).all()
    ids = [request.id for request, cycle in rows if _owes_a_step(plan, request, cycle, now)]
    events = []
    for request_id in ids:
        try:
            async with db.transaction() as session:
                event = await sweep_request(
                    session, plan=plan, secret=secret, request_id=request_id, now=now, link_ttl=link_ttl
                )
                if event is not None and on_event is not None:
                    await on_event(session, event)
        except AlreadyDecided:
            continue  # a decision won the race: nothing to do
        except Exception:  # one broken request (a stage gone from the plan) must not stop the others
            log.exception("sweep failed for request %s", request_id)
            continue
        if event is not None:
            events.append(event)
    return events


def _owes_a_step(plan: Plan, request: ApprovalRequest, cycle: Cycle, now: dt.datetime) -> bool:
    try:
        stage = stage_of(plan, cycle.kind, request.stage)
    except StageNotInPlan:  # `sweep_request` says so, for the coordinators' log
        return True
    return due_step(plan, request, cycle, stage, now) is not None
