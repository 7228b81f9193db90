"""Emails caused by a flow's state changes, queued in the same transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from approvals.config import Settings
from approvals.models import ApprovalRequest, Cycle
from approvals.plan import Plan
from approvals.db import utcnow
from approvals.presentation import cycle_attention_messages, link_messages, submission_message, unrouted_messages
from approvals.requests import NewAssignment
from approvals.submissions import SUBMISSION_LINK, SubmissionAsked, SubmissionUnrouted
from approvals.tokens import APPROVAL_LINK
from notifications.links import queue_link_messages, queue_plain_messages
from notifications.render import Renderer


def mail_domain(settings: Settings) -> str:
    return settings.mail_from.rsplit("@", 1)[-1]


async def queue_link_emails(session: AsyncSession, *, kind: str, plan: Plan, settings: Settings, renderer: Renderer,
                            request: ApprovalRequest, cycle: Cycle, notify: list[NewAssignment]) -> None:
    """One email with a personal link per assignee; a re-run queues nothing twice."""
    messages = link_messages(plan, request, cycle, notify, kind=kind, tz=settings.tz)
    await queue_link_messages(session, renderer=renderer, messages=messages, link_name=APPROVAL_LINK, organizer=settings.organizer,
                              domain=mail_domain(settings))


async def queue_submission_email(session: AsyncSession, *, plan: Plan, settings: Settings, renderer: Renderer,
                                 request: ApprovalRequest, cycle: Cycle, asked: SubmissionAsked,
                                 reminder: int = 0) -> None:
    """The acting agency's submitter gets a link to the step's form (first, or again after
    changes; with `reminder`, the same link again)."""
    message = submission_message(plan, request, cycle, asked, tz=settings.tz, reminder=reminder)
    await queue_link_messages(session, renderer=renderer, messages=[message], link_name=SUBMISSION_LINK, organizer=settings.organizer,
                              domain=mail_domain(settings))


async def queue_asked(session: AsyncSession, *, plan: Plan, settings: Settings, renderer: Renderer,
                      request: ApprovalRequest, cycle: Cycle,
                      asked: SubmissionAsked | SubmissionUnrouted | None) -> None:
    """What asking for a (re)submission produced: the form link to the officer asked, or, when
    nobody could be asked, an alert to the coordinators (never a silent wait)."""
    if isinstance(asked, SubmissionAsked):
        await queue_submission_email(session, plan=plan, settings=settings, renderer=renderer, request=request,
                                     cycle=cycle, asked=asked)
    elif isinstance(asked, SubmissionUnrouted):
        await queue_plain_messages(session, renderer=renderer, domain=mail_domain(settings), messages=unrouted_messages(
            plan, request, cycle, action=asked.action, at=utcnow(), tz=settings.tz, base_url=settings.public_base_url))


async def queue_cycle_attention(session: AsyncSession, *, plan: Plan, settings: Settings, renderer: Renderer,
                                cycle: Cycle) -> int:
    """The coordinators' alert for a cycle that needs them (`Cycle.attention`)."""
    return await queue_plain_messages(session, renderer=renderer, domain=mail_domain(settings), messages=(
        cycle_attention_messages(plan, cycle, reason=cycle.attention, detail=cycle.attention_detail, at=utcnow(),
                                 tz=settings.tz, base_url=settings.public_base_url)))
