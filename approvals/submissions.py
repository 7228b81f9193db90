"""Sending a step back and getting it again: after a request for changes, the official
who submitted it gets a link to resubmit; the resubmission opens the next round."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.models import ApprovalRequest, Cycle, Decision, RequestStatus, SubmissionLink
from approvals.files import store_files
from approvals.plan.schema import Official, Plan, StageKind
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


class SubmissionInvalid(ValueError):
    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


MAX_LINKS = 10


def parse_submission(*, stage_kind: StageKind, text: str, links: str = "", amount: str = "") -> dict:
    """What was submitted, typed by the stage's kind: text always, links, and an amount in
    VND for a budget (digits, dots or commas as thousands separators)."""
    text = text.strip()
    if not text:
        raise SubmissionInvalid("text", "the text is required")
    if len(text) > MAX_TEXT:
        raise SubmissionInvalid("text", f"the text is longer than {MAX_TEXT} characters")
    data: dict = {"text": text}
    urls = [line.strip() for line in links.splitlines() if line.strip()]
    if len(urls) > MAX_LINKS:
        raise SubmissionInvalid("links", f"at most {MAX_LINKS} links")
    for url in urls:
        if not re.fullmatch(r"https?://[^\s<>\"']{3,500}", url):
            raise SubmissionInvalid("links", f"not a web address: {url[:80]}")
    if urls:
        data["links"] = urls
    amount = amount.strip()
    if stage_kind is StageKind.budget and not amount:
        raise SubmissionInvalid("amount", "a budget needs its amount in VND")
    if amount:
        digits = re.sub(r"[.,\s]", "", amount.removesuffix("₫").removesuffix("VND").strip())
        if not digits.isdigit() or len(digits) > 15:
            raise SubmissionInvalid("amount", f"not an amount in VND: {amount[:40]}")
        data["amount"] = int(digits)
    return data


async def resubmit(session: AsyncSession, *, plan: Plan, secret: bytes, token: str, data: dict, now: dt.datetime,
                   link_ttl: dt.timedelta, files: list[tuple[str, str, bytes]] = ()) -> OpenedRequest:
    """Use the link once and open the next round (with its files), waited on by the same flow run."""
    view = await view_submission(session, token, now=now)
    used = await session.execute(
        update(SubmissionLink).where(SubmissionLink.id == view.link.id, SubmissionLink.status == "pending")
        .values(status="used", used_at=now).execution_options(synchronize_session=False))
    if used.rowcount != 1:
        raise InvalidLink()
    opened = await reopen_after_changes(
        session, plan=plan, secret=secret, previous_id=view.request.id, data=data,
        requested_by=view.link.official_id, waiter_ref=view.request.waiter_ref, link_ttl=link_ttl, now=now)
    if files:
        await store_files(session, request_id=opened.request.id, files=list(files), now=now)
    return opened
