"""An official's link, opened: the assignment its token names (live, or refused as an invalid
link), its request and cycle locked or read, the other assignees and the earlier rounds a page
shows. A reply address's token opens the same assignment by the same rules (`open_reply`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.db import row_of
from approvals.errors import InvalidLink
from approvals.models import ApprovalRequest, Assignment, Cycle, Decision
from approvals.statuses import AssignmentStatus, RequestStatus
from approvals.tokens import hash_reply_token, hash_token, reply_token_well_formed, well_formed


@dataclass(frozen=True)
class LinkView:
    assignment: Assignment
    request: ApprovalRequest
    cycle: Cycle
    others: list[Assignment]
    earlier: Sequence[tuple[ApprovalRequest, list[Decision]]] = ()  # previous rounds, newest first


async def earlier_rounds(
    session: AsyncSession, request: ApprovalRequest
) -> list[tuple[ApprovalRequest, list[Decision]]]:
    """The rounds this one re-opens (after requests for changes), with their decisions."""
    rounds: list[tuple[ApprovalRequest, list[Decision]]] = []
    previous_id = request.previous_id
    while previous_id is not None and len(rounds) < 20:
        previous = await row_of(session, ApprovalRequest, previous_id)
        decisions = list(
            (
                await session.execute(
                    select(Decision).where(Decision.request_id == previous.id).order_by(Decision.decided_at)
                )
            ).scalars()
        )
        rounds.append((previous, decisions))
        previous_id = previous.previous_id
    return rounds


def live(assignment: Assignment, now: dt.datetime) -> Assignment:
    """The assignment if its link may still be used (pending, unexpired), else InvalidLink."""
    if assignment.status != AssignmentStatus.pending.value or assignment.expires_at <= now:
        raise InvalidLink()
    return assignment


# Built once: every page an official opens from an email runs them.
_OPENED = (
    select(Assignment, ApprovalRequest, Cycle)
    .join(ApprovalRequest, ApprovalRequest.id == Assignment.request_id)
    .join(Cycle, Cycle.id == ApprovalRequest.cycle_id)
)
LINK_VIEW = _OPENED.where(Assignment.token_hash == bindparam("digest"))
REPLY_VIEW = _OPENED.where(Assignment.reply_token_hash == bindparam("digest"))
ASSIGNMENT_VIEW = _OPENED.where(Assignment.id == bindparam("assignment_id"))  # from an official's queue
OTHER_ASSIGNEES = (
    select(Assignment)
    .where(
        Assignment.request_id == bindparam("request_id"),
        Assignment.id != bindparam("assignment_id"),
        Assignment.status.not_in([AssignmentStatus.reassigned.value]),
    )
    .order_by(Assignment.position)
)


async def open_link(
    session: AsyncSession,
    token: str,
    *,
    now: dt.datetime,
    statement: Select[Assignment, ApprovalRequest, Cycle] = LINK_VIEW,
) -> tuple[Assignment, ApprovalRequest, Cycle]:
    """The live assignment a token opens, with its request and its cycle, in one query
    (`statement`: LINK_VIEW, or a variant of it that locks the request); else InvalidLink."""
    if not well_formed(token):
        raise InvalidLink()
    return await _opened(session, statement, hash_token(token), now=now)


async def open_reply(
    session: AsyncSession,
    token: str,
    *,
    now: dt.datetime,
    statement: Select[Assignment, ApprovalRequest, Cycle] = REPLY_VIEW,
) -> tuple[Assignment, ApprovalRequest, Cycle]:
    """`open_link` for a reply address's token (in any case: `approvals.tokens.reply_token_of`
    reads it from the address): the same live assignment, or InvalidLink."""
    if not reply_token_well_formed(token):
        raise InvalidLink()
    return await _opened(session, statement, hash_reply_token(token), now=now)


async def _opened(
    session: AsyncSession, statement: Select[Assignment, ApprovalRequest, Cycle], digest: str, *, now: dt.datetime
) -> tuple[Assignment, ApprovalRequest, Cycle]:
    found = (await session.execute(statement, {"digest": digest})).first()
    if found is None:
        raise InvalidLink()
    assignment, request, cycle = found
    return live(assignment, now), request, cycle


async def view_link(session: AsyncSession, token: str, *, now: dt.datetime) -> LinkView:
    """What the link page shows. Changes nothing. The assignment, its request and its cycle
    come in one query: the page is what an official opens from every email."""
    return await _view(session, *await open_link(session, token, now=now))


async def view_reply(session: AsyncSession, token: str, *, now: dt.datetime) -> LinkView:
    """What a reply address's token opens, as `view_link` shows it: the step still open and
    asked of that official, or InvalidLink. Changes nothing."""
    return await _view(session, *await open_reply(session, token, now=now))


async def _view(session: AsyncSession, assignment: Assignment, request: ApprovalRequest, cycle: Cycle) -> LinkView:
    if request.status != RequestStatus.pending.value:
        raise InvalidLink()
    others = list(
        (await session.execute(OTHER_ASSIGNEES, {"request_id": request.id, "assignment_id": assignment.id})).scalars()
    )
    return LinkView(assignment, request, cycle, others, await earlier_rounds(session, request))
