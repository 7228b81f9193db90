"""Sending a step back and getting it again: after a request for changes, the official
who submitted it gets a link to resubmit; the resubmission opens the next round."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.models import ApprovalRequest, Cycle, Decision, RequestStatus, SubmissionLink
from approvals.plan.schema import Official, Plan
from approvals.requests import (
    InvalidLink,
    OpenedRequest,
    lock_request,
    local_day,
    reopen_after_changes,
    stage_of,
)
from approvals.tokens import derive_token, hash_token, well_formed

SUBMISSION_LINK = "submission_link"
MAX_TEXT = 20_000


@dataclass(frozen=True)
class ResubmissionAsked:
    link: SubmissionLink
    official: Official


def submitter_for(plan: Plan, request: ApprovalRequest, cycle: Cycle, now: dt.datetime) -> Official | None:
    """Whoever submitted the step; else the first holder of the stage's requester role."""
    if request.requested_by and plan.official(request.requested_by):
        return plan.official(request.requested_by)
    stage = stage_of(plan, cycle.kind, request.stage)
    holders = plan.holders(stage.requester, local_day(plan, now)) if stage.requester else []
    return holders[0] if holders else None


async def ask_resubmission(session: AsyncSession, *, plan: Plan, secret: bytes, request_id: uuid.UUID,
                           now: dt.datetime, link_ttl: dt.timedelta) -> ResubmissionAsked | None:
    """Create the resubmission link once (a re-run finds it and asks nothing new)."""
    request = await lock_request(session, request_id)
    if request is None or request.status != RequestStatus.changes_requested.value:
        return None
    existing = (await session.execute(select(SubmissionLink).where(SubmissionLink.request_id == request.id))).scalar()
    if existing is not None:
        return None
    cycle = await session.get(Cycle, request.cycle_id)
    official = submitter_for(plan, request, cycle, now)
    if official is None:
        await audit.append(session, actor="system", action="resubmission.unrouted", entity="approval_request",
                           entity_id=str(request.id), data={"reason": "no submitter and no requester role holder"})
        return None
    link = SubmissionLink(id=uuid.uuid4(), request_id=request.id, official_id=official.id, token_generation=1,
                          expires_at=now + link_ttl, created_at=now)
    link.token_hash = hash_token(derive_token(secret, link.id, 1))
    session.add(link)
    await session.flush()
    await audit.append(session, actor="system", action="resubmission.asked", entity="approval_request",
                       entity_id=str(request.id), data={"official": official.id})
    return ResubmissionAsked(link, official)


@dataclass(frozen=True)
class SubmissionView:
    link: SubmissionLink
    request: ApprovalRequest
    cycle: Cycle
    comments: list[Decision]


async def view_submission(session: AsyncSession, token: str, *, now: dt.datetime) -> SubmissionView:
    """What the resubmission page shows (the reviewers' comments). Changes nothing."""
    if not well_formed(token):
        raise InvalidLink()
    link = (await session.execute(select(SubmissionLink).where(SubmissionLink.token_hash == hash_token(token)))).scalar()
    if link is None or link.status != "pending" or link.expires_at <= now:
        raise InvalidLink()
    request = await session.get(ApprovalRequest, link.request_id)
    cycle = await session.get(Cycle, request.cycle_id)
    comments = list((await session.execute(select(Decision).where(Decision.request_id == request.id)
                                           .order_by(Decision.decided_at))).scalars())
    return SubmissionView(link, request, cycle, comments)


async def resubmit(session: AsyncSession, *, plan: Plan, secret: bytes, token: str, text: str, now: dt.datetime,
                   link_ttl: dt.timedelta) -> OpenedRequest:
    """Use the link once and open the next round, waited on by the same flow run."""
    view = await view_submission(session, token, now=now)
    used = await session.execute(
        update(SubmissionLink).where(SubmissionLink.id == view.link.id, SubmissionLink.status == "pending")
        .values(status="used", used_at=now).execution_options(synchronize_session=False))
    if used.rowcount != 1:
        raise InvalidLink()
    return await reopen_after_changes(
        session, plan=plan, secret=secret, previous_id=view.request.id, data={"text": text.strip()[:MAX_TEXT]},
        requested_by=view.link.official_id, waiter_ref=view.request.waiter_ref, link_ttl=link_ttl, now=now)
