"""Submissions through a form link: a unit submits a step that starts with a submission
(materials, an outlet's plan, a budget, a report) and its approvers are asked; after a request
for changes, the official who submitted it gets a link to resubmit, which opens the next round."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.clock.deadlines import local_day
from approvals.db import row_of, rowcount
from approvals.models import ApprovalRequest, AuditEvent, Cycle, SubmissionLink
from approvals.plan.people import Official
from approvals.plan.schema import Plan
from approvals.routing.steps import OpenedRequest, lock_request, open_request, stage_of
from approvals.statuses import LinkKind, LinkStatus, RequestStatus
from approvals.tokens import derive_token, hash_token

SUBMISSION_LINK = "submission_link"


@dataclass(frozen=True)
class SubmissionAsked:
    """A submission link was created for an official (first submission or resubmission)."""

    link: SubmissionLink
    official: Official

    @property
    def first(self) -> bool:
        return self.link.kind == LinkKind.first.value


@dataclass(frozen=True)
class SubmissionUnrouted:
    """Nobody could be asked to (re)submit the step: no submitter, and nobody holds the stage's
    requester role on the day. Recorded once (`submission.unrouted` or `resubmission.unrouted`);
    the caller tells the coordinators, who must act: the step would otherwise wait on an email
    that was never sent."""

    request: ApprovalRequest
    action: str  # submission or resubmission


def submitter_for(plan: Plan, request: ApprovalRequest, cycle: Cycle, now: dt.datetime) -> Official | None:
    """Whoever submitted the step; else the first holder of the stage's requester role (in the
    branch's own unit for a per-unit role)."""
    if request.requested_by and plan.official(request.requested_by):
        return plan.official(request.requested_by)
    stage = stage_of(plan, cycle.kind, request.stage)
    holders = (
        plan.holders(stage.requester, local_day(plan, now), unit=request.subject or None) if stage.requester else []
    )
    return holders[0] if holders else None


async def _ask(
    session: AsyncSession,
    *,
    plan: Plan,
    secret: bytes,
    request: ApprovalRequest,
    now: dt.datetime,
    expires_at: dt.datetime,
    kind: str,
) -> SubmissionAsked | SubmissionUnrouted | None:
    """One link per request and kind: a re-run finds it and asks nothing new (None). A step
    that began with a first submission keeps its used `first` link; it never stands in for the
    resubmission link a request for changes needs."""
    existing = (
        await session.execute(
            select(SubmissionLink.id)
            .where(SubmissionLink.request_id == request.id, SubmissionLink.kind == kind)
            .limit(1)
        )
    ).first()
    if existing is not None:
        return None
    cycle = await row_of(session, Cycle, request.cycle_id)
    official = submitter_for(plan, request, cycle, now)
    action = "submission" if kind == LinkKind.first.value else "resubmission"
    if official is None:
        recorded = (
            await session.execute(
                select(AuditEvent.id)
                .where(
                    AuditEvent.entity == "approval_request",
                    AuditEvent.entity_id == str(request.id),
                    AuditEvent.action == f"{action}.unrouted",
                )
                .limit(1)
            )
        ).first()
        if recorded is not None:
            return None  # a re-run: recorded and told once
        await audit.append(
            session,
            actor="system",
            action=f"{action}.unrouted",
            entity="approval_request",
            entity_id=str(request.id),
            data={"reason": "no submitter and no requester role holder"},
        )
        return SubmissionUnrouted(request, action)
    link = SubmissionLink(
        id=uuid.uuid4(),
        request_id=request.id,
        official_id=official.id,
        token_generation=1,
        expires_at=expires_at,
        created_at=now,
        kind=kind,
    )
    link.token_hash = hash_token(derive_token(secret, link.id, 1))
    session.add(link)
    await session.flush()
    await audit.append(
        session,
        actor="system",
        action=f"{action}.asked",
        entity="approval_request",
        entity_id=str(request.id),
        data={"official": official.id},
    )
    return SubmissionAsked(link, official)


async def ask_resubmission(
    session: AsyncSession, *, plan: Plan, secret: bytes, request_id: uuid.UUID, now: dt.datetime, link_ttl: dt.timedelta
) -> SubmissionAsked | SubmissionUnrouted | None:
    """Create the resubmission link once (a re-run finds it and asks nothing new: None);
    SubmissionUnrouted, once, when nobody can be asked."""
    request = await lock_request(session, request_id)
    if request is None or request.status != RequestStatus.changes_requested.value:
        return None
    return await _ask(
        session,
        plan=plan,
        secret=secret,
        request=request,
        now=now,
        expires_at=now + link_ttl,
        kind=LinkKind.resubmission.value,
    )


async def ask_unasked(
    session: AsyncSession,
    *,
    plan: Plan,
    secret: bytes,
    request: ApprovalRequest,
    now: dt.datetime,
    link_ttl: dt.timedelta,
) -> SubmissionAsked | None:
    """A step nobody could be asked to (re)submit (`*.unrouted`): ask now, once someone holds the
    role (a coordinator's "remind"). None when still nobody can be asked, or it was asked."""
    first = request.status == RequestStatus.awaiting_submission.value
    asked = await _ask(
        session,
        plan=plan,
        secret=secret,
        request=request,
        now=now,
        expires_at=(max(now, request.due_at) if first else now) + link_ttl,
        kind=LinkKind.first.value if first else LinkKind.resubmission.value,
    )
    return asked if isinstance(asked, SubmissionAsked) else None


async def pending_link(session: AsyncSession, request_id: uuid.UUID, now: dt.datetime) -> SubmissionLink | None:
    """The request's form link that can still be used, if any."""
    return (
        await session.execute(
            select(SubmissionLink).where(
                SubmissionLink.request_id == request_id,
                SubmissionLink.status == LinkStatus.pending.value,
                SubmissionLink.expires_at > now,
            )
        )
    ).scalar()


async def remind_submitter(
    session: AsyncSession, *, plan: Plan, secret: bytes, request: ApprovalRequest, now: dt.datetime
) -> SubmissionAsked | None:
    """A reminder carries a fresh link: the form link's next generation replaces the last one,
    which stops working (a forwarded or leaked old email opens nothing). None when nobody can be
    reminded: no pending link, its official gone from the directory, or the link used meanwhile."""
    link = await pending_link(session, request.id, now)
    if link is None:
        return None
    official = plan.official(link.official_id)
    if official is None:
        return None
    generation = link.token_generation + 1
    moved = await session.execute(
        update(SubmissionLink)
        .where(
            SubmissionLink.id == link.id,
            SubmissionLink.status == LinkStatus.pending.value,
            SubmissionLink.token_generation == link.token_generation,
        )  # compare-and-set: a submit may race
        .values(token_generation=generation, token_hash=hash_token(derive_token(secret, link.id, generation)))
        .execution_options(synchronize_session=False)
    )
    if rowcount(moved) != 1:
        return None
    await session.refresh(link)
    return SubmissionAsked(link, official)


@dataclass(frozen=True)
class SubmissionOpened:
    opened: OpenedRequest
    asked: SubmissionAsked | SubmissionUnrouted | None  # None when already asked (a re-run)


async def open_submission(
    session: AsyncSession,
    *,
    plan: Plan,
    secret: bytes,
    cycle: Cycle,
    stage_id: str,
    subject: str,
    waiter_ref: str | None,
    now: dt.datetime,
    link_ttl: dt.timedelta,
    data: dict[str, Any] | None = None,
) -> SubmissionOpened:
    """Open a step that starts with a submission: the request waits for it, and the holder of
    the stage's requester role (the branch's own, for a per-unit role) gets a link to the form.
    The link stays valid until the due time plus the usual link lifetime."""
    opened = await open_request(
        session,
        plan=plan,
        secret=secret,
        cycle=cycle,
        stage_id=stage_id,
        subject=subject,
        waiter_ref=waiter_ref,
        link_ttl=link_ttl,
        now=now,
        awaiting_submission=True,
        data=data,
    )
    request = opened.request
    if request.status != RequestStatus.awaiting_submission.value:
        return SubmissionOpened(opened, None)
    asked = await _ask(
        session,
        plan=plan,
        secret=secret,
        request=request,
        now=now,
        expires_at=max(now, request.due_at) + link_ttl,
        kind=LinkKind.first.value,
    )
    return SubmissionOpened(opened, asked)
