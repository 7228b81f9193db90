"""Chasing an open request: new links for its assignees, its superiors brought in, and the one
escalation. Shared by the sweep (on schedule) and coordinators (on demand); the caller holds the
request's row lock."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.clock.deadlines import CycleClock, clock_of, local_day
from approvals.db import row_of, rowcount
from approvals.models import ApprovalRequest, Assignment, Cycle
from approvals.people.directory import (
    Approver,
    delegations_in_force,
    resolvable,
    resolve_approvers,
)
from approvals.plan.schema import Plan
from approvals.plan.stages import EscalationMode, Policy, Stage
from approvals.routing.steps import AlreadyDecided, NewAssignment, add_assignments, issue_token
from approvals.statuses import AssignmentStatus, RequestStatus

LIVE = (AssignmentStatus.pending.value, AssignmentStatus.waiting.value)


async def rotate_links(
    session: AsyncSession,
    *,
    plan: Plan,
    secret: bytes,
    request: ApprovalRequest,
    now: dt.datetime,
    link_ttl: dt.timedelta | None = None,
) -> list[NewAssignment]:
    """Give every pending assignee of a locked request a new link (the old one stops working).

    A link close to its expiry is extended, so a reminder never carries a dead link.
    Assignees the directory no longer resolves are left out (fail closed).
    """
    pending = list(
        (
            await session.execute(
                select(Assignment)
                .where(Assignment.request_id == request.id, Assignment.status == AssignmentStatus.pending.value)
                .order_by(Assignment.position)
            )
        ).scalars()
    )
    today = local_day(plan, now)
    notify = []
    for assignment in pending:
        official = resolvable(plan, assignment.official_id, today)
        if official is None:
            continue
        issue_token(assignment, secret, assignment.token_generation + 1)
        if link_ttl is not None and assignment.expires_at < now + link_ttl:
            assignment.expires_at = now + link_ttl
        notify.append(NewAssignment(assignment, official))
    await session.flush()
    return notify


async def superiors_for(
    session: AsyncSession, *, plan: Plan, request: ApprovalRequest, stage: Stage, now: dt.datetime
) -> list[Approver]:
    """Holders of the stage's superior role today who are not already asked (never the requester)."""
    if stage.escalate_to is None:  # no superior role: nobody holds it (as plan.holders would find)
        return []
    assigned = set(
        (
            await session.execute(
                select(Assignment.official_id).where(Assignment.request_id == request.id, Assignment.status.in_(LIVE))
            )
        ).scalars()
    )
    return [
        a
        for a in resolve_approvers(
            plan,
            [stage.escalate_to],
            on=local_day(plan, now),
            delegations=await delegations_in_force(session, plan),
            requester=request.requested_by,
        )
        if a.official.id not in assigned
    ]


async def bring_in_superiors(
    session: AsyncSession,
    *,
    request: ApprovalRequest,
    stage: Stage,
    superiors: list[Approver],
    secret: bytes,
    link_ttl: dt.timedelta,
    now: dt.datetime,
) -> list[NewAssignment]:
    """Add the superiors as approvers; on handover, the others' links stop working first
    (only when a superior exists: a step is never left with nobody to decide)."""
    if stage.escalation is EscalationMode.handover and superiors:
        await session.execute(
            update(Assignment)
            .where(Assignment.request_id == request.id, Assignment.status.in_(LIVE))
            .values(status=AssignmentStatus.revoked.value)
            .execution_options(synchronize_session=False)
        )
        if request.policy != Policy.any.value:
            request.policy = Policy.any.value  # the superior decides alone once the step is handed over
    position = 1 + max(
        [0, *(await session.execute(select(Assignment.position).where(Assignment.request_id == request.id))).scalars()]
    )
    return await add_assignments(
        session, request, superiors, policy=Policy.any, secret=secret, link_ttl=link_ttl, now=now, start=position
    )


def escalation_expiry(stage: Stage, *, due_at: dt.datetime, now: dt.datetime, clock: CycleClock) -> dt.datetime | None:
    """When an escalated step expires: the stage's grace (`escalation_days`, the cycle's own days)
    after its due time, or after the escalation itself when that comes later (a sweep that ran
    late, a coordinator after the due time). A coordinator's early escalation never shortens the
    wait. None: no expiry."""
    if not stage.escalation_days:
        return None
    return max(now, due_at) + clock.days(stage.escalation_days)


async def escalate(
    session: AsyncSession,
    *,
    plan: Plan,
    secret: bytes,
    request: ApprovalRequest,
    stage: Stage,
    actor: str,
    now: dt.datetime,
    link_ttl: dt.timedelta,
    superiors: list[Approver] | None = None,
) -> list[NewAssignment]:
    """Escalate a pending, locked request once: mark it, set its expiry, bring in its superiors
    (mode add or handover) and write the audit row. The sweep calls it at the due time
    (`actor="system"`), a coordinator at any time. Raises AlreadyDecided when the request was
    settled or escalated meanwhile; returns who gets a link."""
    if superiors is None:
        superiors = await superiors_for(session, plan=plan, request=request, stage=stage, now=now)
    clock = clock_of(plan, await row_of(session, Cycle, request.cycle_id))
    moved = await session.execute(
        update(ApprovalRequest)
        .where(
            ApprovalRequest.id == request.id,
            ApprovalRequest.status == RequestStatus.pending.value,
            ApprovalRequest.escalated_at.is_(None),
        )
        .values(
            escalated_at=now,
            told_at=now,
            expires_at=escalation_expiry(stage, due_at=request.due_at, now=now, clock=clock),
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(moved) != 1:
        raise AlreadyDecided()
    await session.refresh(request)
    notify = await bring_in_superiors(
        session, request=request, stage=stage, superiors=superiors, secret=secret, link_ttl=link_ttl, now=now
    )
    data: dict[str, Any] = {
        "to": [n.official.id for n in notify],
        "mode": stage.escalation.value,
        "expires_at": request.expires_at.isoformat() if request.expires_at else None,
    }
    if actor != "system":
        data["manual"] = True
    await audit.append(
        session,
        actor=actor,
        action="request.escalated",
        entity="approval_request",
        entity_id=str(request.id),
        data=data,
    )
    return notify
