"""Opening approval requests, re-opening them after changes, and reassigning them.

Every function works inside the caller's transaction and only flushes; the caller
queues the emails for the assignments returned, in that same transaction.
Decisions are in `approvals.routing.decisions`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.clock.deadlines import local_day, planned_due, step_due
from approvals.db import row_of, rowcount
from approvals.errors import Conflict, InvalidLink, Refused
from approvals.models import ApprovalRequest, Assignment, Cycle
from approvals.people.directory import (
    Approver,
    delegations_in_force,
    resolvable,
    resolve_approvers,
)
from approvals.plan.people import Official
from approvals.plan.schema import Plan
from approvals.plan.stages import Policy, Stage
from approvals.routing.stages import set_stage_status
from approvals.statuses import AssignmentStatus, RequestStatus, StageStatus
from approvals.tokens import derive_reply_token, derive_token, hash_reply_token, hash_token


class NoApprover(Refused):
    """Nobody can decide the step on the day: it cannot be routed (fail closed)."""


class StageNotInPlan(InvalidLink):
    """The plan was changed and no longer has the request's stage: a link to it is dead, and
    answers as any invalid link does (a plain `next()` raised StopIteration here, which a
    coroutine turns into RuntimeError: a 500)."""


class AlreadyDecided(Conflict):
    """The compare-and-set lost: someone (or something) settled this first."""

    def __init__(self, message: str = "this request is already settled") -> None:
        super().__init__(message)


@dataclass(frozen=True)
class NewAssignment:
    """An official who must now be emailed a (new) link."""

    assignment: Assignment
    official: Official


@dataclass(frozen=True)
class OpenedRequest:
    request: ApprovalRequest
    cycle: Cycle
    new_assignments: list[NewAssignment]


def stage_of(plan: Plan, cycle_kind: str, stage_id: str) -> Stage:
    """The plan's stage (`Plan.stage`); `StageNotInPlan` where the plan no longer has it (nor its cycle)."""
    stage = plan.stage(cycle_kind, stage_id)
    if stage is None:
        raise StageNotInPlan(f"the plan has no stage {stage_id!r} in cycle {cycle_kind!r}")
    return stage


async def lock_request(session: AsyncSession, request_id: uuid.UUID) -> ApprovalRequest | None:
    """Take the request's row lock first: every change to a request and its assignments
    (decision, sweep, reassignment) locks in this order, so they queue instead of deadlocking."""
    return (
        await session.execute(
            select(ApprovalRequest)
            .where(ApprovalRequest.id == request_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar()


async def get_or_create_cycle(session: AsyncSession, *, kind: str, period: str, starts_on: dt.date) -> Cycle:
    cycle = (await session.execute(select(Cycle).where(Cycle.kind == kind, Cycle.period == period))).scalar()
    if cycle is None:
        cycle = Cycle(kind=kind, period=period, starts_on=starts_on)
        session.add(cycle)
        await session.flush()
    return cycle


def issue_token(assignment: Assignment, secret: bytes, generation: int) -> None:
    """Give an assignment a new link and a new reply address (the old ones, if any, stop working)."""
    assignment.token_generation = generation
    assignment.token_hash = hash_token(derive_token(secret, assignment.id, generation))
    assignment.reply_token_hash = hash_reply_token(derive_reply_token(secret, assignment.id, generation))


def new_assignment(
    request: ApprovalRequest,
    approver: Approver,
    *,
    secret: bytes,
    position: int,
    active: bool,
    link_ttl: dt.timedelta,
    now: dt.datetime,
) -> Assignment:
    assignment = Assignment(
        id=uuid.uuid4(),
        request_id=request.id,
        official_id=approver.official.id,
        on_behalf_of=approver.on_behalf_of,
        role=approver.role,
        position=position,
        expires_at=now + link_ttl,
        created_at=now,
        status=(AssignmentStatus.pending if active else AssignmentStatus.waiting).value,
    )
    # A waiting assignment (later in a sequence) gets generation 0, a link nobody is ever sent.
    issue_token(assignment, secret, 1 if active else 0)
    return assignment


async def add_assignments(
    session: AsyncSession,
    request: ApprovalRequest,
    approvers: list[Approver],
    *,
    policy: Policy,
    secret: bytes,
    link_ttl: dt.timedelta,
    now: dt.datetime,
    start: int = 0,
) -> list[NewAssignment]:
    new = []
    for offset, approver in enumerate(approvers):
        active = policy is not Policy.sequence or (start + offset) == 0
        assignment = new_assignment(
            request, approver, secret=secret, position=start + offset, active=active, link_ttl=link_ttl, now=now
        )
        session.add(assignment)
        if active:
            new.append(NewAssignment(assignment, approver.official))
    await session.flush()
    return new


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
    requested_by: str | None = None,
    data: dict[str, Any] | None = None,
    previous: ApprovalRequest | None = None,
    awaiting_submission: bool = False,
) -> OpenedRequest:
    """Open the stage's request, or find the one already open (a re-run after resume opens nothing).

    `subject` names the branch (a unit, for a fan-out stage). With `awaiting_submission` the
    request waits for its submitter first and nobody is asked to decide yet (`route` does that
    once the submission arrives)."""
    round_ = previous.round + 1 if previous else 1
    existing = (
        await session.execute(
            select(ApprovalRequest).where(
                ApprovalRequest.cycle_id == cycle.id,
                ApprovalRequest.stage == stage_id,
                ApprovalRequest.subject == subject,
                ApprovalRequest.round == round_,
            )
        )
    ).scalar()
    if existing is not None:
        if waiter_ref and existing.waiter_ref != waiter_ref:
            existing.waiter_ref = waiter_ref
            await session.flush()
        return OpenedRequest(existing, cycle, [])

    stage = stage_of(plan, cycle.kind, stage_id)
    today = local_day(plan, now)
    request = ApprovalRequest(
        cycle_id=cycle.id,
        stage=stage_id,
        subject=subject,
        round=round_,
        policy=stage.policy.value,
        acting_agency=plan.agency_on(subject or stage.acting_agencies[0], today, None if subject else stage.duty).id,
        due_at=previous.due_at if previous else step_due(plan, stage, cycle, now),
        waiter_ref=waiter_ref,
        created_at=now,
        requested_by=requested_by,
        data=data or {},
        previous_id=previous.id if previous else None,
        status=(RequestStatus.awaiting_submission if awaiting_submission else RequestStatus.pending).value,
    )
    session.add(request)
    await set_stage_status(
        session, cycle_id=cycle.id, stage=stage_id, status=StageStatus.waiting, now=now, audited=False
    )
    await session.flush()
    new = (
        []
        if awaiting_submission
        else await route(session, plan=plan, request=request, secret=secret, link_ttl=link_ttl, now=now)
    )
    await audit.append(
        session,
        actor=f"official:{requested_by}" if requested_by else "system",
        action="request.opened",
        entity="approval_request",
        entity_id=str(request.id),
        data={
            "cycle": f"{cycle.kind}/{cycle.period}",
            "stage": stage_id,
            "subject": subject,
            "round": round_,
            "policy": request.policy,
            "previous": str(previous.id) if previous else None,
            "status": request.status,
            "assignees": [
                {"official": a.official_id, "on_behalf_of": a.on_behalf_of}
                for a in (
                    await session.execute(
                        select(Assignment).where(Assignment.request_id == request.id).order_by(Assignment.position)
                    )
                ).scalars()
            ],
            "due_at": request.due_at.isoformat(),
            **(
                {"planned_due_at": planned.isoformat()}
                if (planned := planned_due(plan, stage, cycle)) != request.due_at and previous is None
                else {}
            ),
        },
    )
    return OpenedRequest(request, cycle, new)


async def route(
    session: AsyncSession,
    *,
    plan: Plan,
    request: ApprovalRequest,
    secret: bytes,
    link_ttl: dt.timedelta,
    now: dt.datetime,
) -> list[NewAssignment]:
    """Ask the officials who decide the step: its roles after the routing rules its data
    triggers (an amount above a threshold), resolved on the day with the delegations in force,
    never the submitter, and for a branch only that unit's holders of a per-unit role.
    Fails closed: NoApprover when nobody can decide."""
    cycle = await row_of(session, Cycle, request.cycle_id)
    stage = stage_of(plan, cycle.kind, request.stage)
    roles, policy = stage.routed(request.data or {})
    today = local_day(plan, now)
    approvers = resolve_approvers(
        plan,
        roles,
        on=today,
        delegations=await delegations_in_force(session, plan),
        requester=request.requested_by,
        unit=request.subject or None,
    )
    if not approvers:
        raise NoApprover(f"nobody can decide stage '{request.stage}' on {today} (roles {', '.join(roles)})")
    quorum = stage.quorum if policy is Policy.quorum else None
    if quorum is not None and quorum > len(approvers):
        raise NoApprover(
            f"stage '{request.stage}' needs {quorum} approvals but only {len(approvers)} officials can decide"
        )
    request.policy, request.quorum = policy.value, quorum
    return await add_assignments(session, request, approvers, policy=policy, secret=secret, link_ttl=link_ttl, now=now)


async def reopen_after_changes(
    session: AsyncSession,
    *,
    plan: Plan,
    secret: bytes,
    previous_id: uuid.UUID,
    data: dict[str, Any],
    requested_by: str | None,
    waiter_ref: str | None,
    link_ttl: dt.timedelta,
    now: dt.datetime,
) -> OpenedRequest:
    """The acting agency resubmitted after a request for changes: a new round, linked to the previous one."""
    previous = await session.get(ApprovalRequest, previous_id, populate_existing=True)
    if previous is None or previous.status != RequestStatus.changes_requested.value:
        raise Refused("only a request sent back for changes can be re-opened")
    cycle = await row_of(session, Cycle, previous.cycle_id)
    return await open_request(
        session,
        plan=plan,
        secret=secret,
        cycle=cycle,
        stage_id=previous.stage,
        subject=previous.subject,
        waiter_ref=waiter_ref,
        link_ttl=link_ttl,
        now=now,
        requested_by=requested_by,
        data=data,
        previous=previous,
    )


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
) -> NewAssignment:
    """A coordinator moves an assignment: the old link stops working, the new assignee gets a new one."""
    old = await session.get(Assignment, assignment_id)
    if old is None:
        raise Refused("no such assignment")
    request = await lock_request(session, old.request_id)
    assert request is not None, "an assignment's request exists (a foreign key)"
    await session.refresh(old)
    official = resolvable(plan, to_official, local_day(plan, now))
    if official is None:
        raise Refused(f"official '{to_official}' cannot be resolved in the directory today")
    if to_official == request.requested_by:
        raise Refused("the step cannot be reassigned to the official who submitted it")
    taken = await session.execute(
        select(Assignment.id).where(
            Assignment.request_id == request.id,
            Assignment.official_id == to_official,
            Assignment.status.in_([AssignmentStatus.pending.value, AssignmentStatus.waiting.value]),
        )
    )
    if taken.first() is not None:
        raise Refused(f"official '{to_official}' is already asked to decide this step")
    moved = await session.execute(
        update(Assignment)
        .where(
            Assignment.id == old.id,
            Assignment.status.in_([AssignmentStatus.pending.value, AssignmentStatus.waiting.value]),
        )
        .values(status=AssignmentStatus.reassigned.value)
        .execution_options(synchronize_session=False)
    )
    if rowcount(moved) != 1 or request.status != RequestStatus.pending.value:
        raise AlreadyDecided()
    replacement = new_assignment(
        request,
        Approver(official, old.role, None),
        secret=secret,
        position=old.position,
        active=old.status == AssignmentStatus.pending.value,
        link_ttl=link_ttl,
        now=now,
    )
    session.add(replacement)
    await session.flush()
    await session.execute(
        update(Assignment)
        .where(Assignment.id == old.id)
        .values(replaced_by=replacement.id)
        .execution_options(synchronize_session=False)
    )
    await audit.append(
        session,
        actor=by,
        action="assignment.reassigned",
        entity="approval_request",
        entity_id=str(request.id),
        data={"from": old.official_id, "to": to_official, "assignment": str(replacement.id)},
    )
    return NewAssignment(replacement, official)
