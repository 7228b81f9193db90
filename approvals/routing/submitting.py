"""A submission received: its form link viewed, its fields and files checked, the step
submitted (its approvers asked), and what it carries to the later stages that show it."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.clock.deadlines import clock_of, reminders_passed, step_due
from approvals.db import row_of, rowcount
from approvals.errors import InvalidInput, InvalidLink
from approvals.models import ApprovalRequest, Cycle, Decision, SubmissionFile, SubmissionLink
from approvals.plan.schema import Plan
from approvals.plan.stages import FieldSpec, StageKind
from approvals.routing.files import store_files
from approvals.routing.steps import OpenedRequest, lock_request, reopen_after_changes, route, stage_of
from approvals.statuses import LinkKind, LinkStatus, RequestStatus
from approvals.tokens import hash_token, well_formed

MAX_TEXT = 20_000  # characters of a submission's text, and of each of its fields


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
    link = (
        await session.execute(select(SubmissionLink).where(SubmissionLink.token_hash == hash_token(token)))
    ).scalar()
    if link is None or link.status != LinkStatus.pending.value or link.expires_at <= now:
        raise InvalidLink()
    request = await row_of(session, ApprovalRequest, link.request_id, populate_existing=True)
    expected = (
        RequestStatus.awaiting_submission if link.kind == LinkKind.first.value else RequestStatus.changes_requested
    )
    if request.status != expected.value:
        raise InvalidLink()  # the step expired or its cycle was cancelled
    cycle = await row_of(session, Cycle, request.cycle_id)
    comments = list(
        (
            await session.execute(
                select(Decision).where(Decision.request_id == request.id).order_by(Decision.decided_at)
            )
        ).scalars()
    )
    return SubmissionView(link, request, cycle, comments)


class SubmissionInvalid(InvalidInput):
    def __init__(self, field: str, message: str, name: str = ""):
        self.field, self.name = field, name  # name: the form box's label, for a named field
        super().__init__(message)


MAX_LINKS = 10


def parse_submission(
    *,
    stage_kind: StageKind,
    text: str,
    links: str = "",
    amount: str = "",
    fields: dict[str, str] | None = None,
    specs: Sequence[FieldSpec] = (),
    language: str = "vi",
) -> dict[str, Any]:
    """What was submitted, typed by the stage's kind: text always, the stage's named fields
    (`specs`, their values in `fields`; a required one must be filled), links, and an amount
    in VND for a budget (digits, dots or commas as thousands separators)."""
    text = unicodedata.normalize("NFC", text).strip()  # typed on phones, Vietnamese often comes decomposed
    if not text:
        raise SubmissionInvalid("text", "the text is required")
    if len(text) > MAX_TEXT:
        raise SubmissionInvalid("text", f"the text is longer than {MAX_TEXT} characters")
    data: dict[str, Any] = {"text": text}
    named: dict[str, str] = {}
    for spec in specs:
        value = unicodedata.normalize("NFC", (fields or {}).get(spec.id, "")).strip()
        if spec.required and not value:
            raise SubmissionInvalid("field", f"'{spec.id}' is required", name=spec.name.get(language))
        if len(value) > MAX_TEXT:
            raise SubmissionInvalid(
                "field", f"'{spec.id}' is longer than {MAX_TEXT} characters", name=spec.name.get(language)
            )
        if value:
            named[spec.id] = value
    if named:
        data["fields"] = named
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


def _give_notice(plan: Plan, cycle: Cycle, request: ApprovalRequest, now: dt.datetime) -> None:
    """A unit submits after its step was reported overdue: its approvers get the plan's minimum
    notice from now, and the step goes through the sweep again (reminders still ahead, then
    escalation or expiry) instead of waiting forever with its overdue mark."""
    stage = stage_of(plan, cycle.kind, request.stage)
    request.due_at = max(request.due_at, step_due(plan, stage, cycle, now))
    request.escalated_at = request.told_at = None
    request.reminders_sent = reminders_passed(stage, request, now, clock_of(plan, cycle))


async def submit(
    session: AsyncSession,
    *,
    plan: Plan,
    secret: bytes,
    token: str,
    data: dict[str, Any],
    now: dt.datetime,
    link_ttl: dt.timedelta,
    files: Sequence[tuple[str, str, bytes]] = (),
) -> OpenedRequest:
    """Use the link once. A first submission fills the waiting request and asks its approvers
    (routed by what was submitted, e.g. the amount); a resubmission opens the next round. Either
    way the same flow run waits on it, and the files are kept with the round they belong to."""
    view = await view_submission(session, token, now=now)
    request = await lock_request(session, view.request.id)
    assert request is not None, "the request its link was just found with exists"
    if "shown" in (request.data or {}):  # what earlier stages sent travels with every round
        data = {**data, "shown": request.data["shown"]}
    used = await session.execute(
        update(SubmissionLink)
        .where(SubmissionLink.id == view.link.id, SubmissionLink.status == LinkStatus.pending.value)
        .values(status=LinkStatus.used.value, used_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(used) != 1:
        raise InvalidLink()
    if view.link.kind == LinkKind.first.value:
        if request.status != RequestStatus.awaiting_submission.value:
            raise InvalidLink()
        request.data, request.requested_by = data, view.link.official_id
        request.status = RequestStatus.pending.value
        late = request.escalated_at is not None
        if late:
            _give_notice(plan, view.cycle, request, now)
        await session.flush()
        new = await route(session, plan=plan, request=request, secret=secret, link_ttl=link_ttl, now=now)
        await audit.append(
            session,
            actor=f"official:{view.link.official_id}",
            action="request.submitted",
            entity="approval_request",
            entity_id=str(request.id),
            data={
                "policy": request.policy,
                "assignees": [n.official.id for n in new],
                "fields": sorted(data),
                **({"late": True, "due_at": request.due_at.isoformat()} if late else {}),
            },
        )
        opened = OpenedRequest(request, view.cycle, new)
    else:
        opened = await reopen_after_changes(
            session,
            plan=plan,
            secret=secret,
            previous_id=view.request.id,
            data=data,
            requested_by=view.link.official_id,
            waiter_ref=view.request.waiter_ref,
            link_ttl=link_ttl,
            now=now,
        )
    if files:
        await store_files(session, request_id=opened.request.id, files=list(files), now=now)
    return opened


# What earlier stages sent, carried to a later one ------------------------------------------


class Carried:
    given = "given"  # approved or acknowledged
    pending = "pending"  # sent, not yet decided (or the step expired before anyone did)
    absent = "absent"  # nothing came: the chain went on without it


async def carried(session: AsyncSession, *, plan: Plan, cycle: Cycle, stage_ids: Sequence[str]) -> list[dict[str, Any]]:
    """What each of the earlier single-branch stages received, as a later stage opens (the
    orientation and the Board's guidance, for the outlets): its latest round with something
    submitted that was not turned down, its text, named fields, links and the names and ids of
    its files; or that nothing came. Kept with the later stage's requests: its emails and
    pages show it as it was when the stage opened."""
    shown: list[dict[str, Any]] = []
    for stage_id in stage_ids:
        rows = (
            (
                await session.execute(
                    select(ApprovalRequest)
                    .where(ApprovalRequest.cycle_id == cycle.id, ApprovalRequest.stage == stage_id)
                    .order_by(ApprovalRequest.round.desc())
                )
            )
            .scalars()
            .all()
        )
        latest = next(
            (
                r
                for r in rows
                if (r.data or {}).get("text")
                and r.status in (RequestStatus.approved.value, RequestStatus.pending.value, RequestStatus.expired.value)
            ),
            None,
        )
        entry: dict[str, Any] = {"stage": stage_id, "status": Carried.absent}
        if latest is not None:
            data = latest.data or {}
            files = (
                await session.execute(
                    select(SubmissionFile.id, SubmissionFile.filename)
                    .where(SubmissionFile.request_id == latest.id)
                    .order_by(SubmissionFile.created_at)
                )
            ).all()
            entry = {
                "stage": stage_id,
                "status": Carried.given if latest.status == RequestStatus.approved.value else Carried.pending,
                "text": data["text"],
                "fields": dict(data.get("fields", {})),
                "links": list(data.get("links", [])),
                "files": [{"id": str(file_id), "name": name} for file_id, name in files],
            }
        shown.append(entry)
    return shown
