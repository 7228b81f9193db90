"""Emails caused by a flow's state changes, queued in the same transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from approvals.config import Settings
from approvals.models import ApprovalRequest, Cycle
from approvals.plan import Plan
from approvals.presentation import link_messages, submission_message
from approvals.requests import NewAssignment
from approvals.submissions import SUBMISSION_LINK, SubmissionAsked
from approvals.tokens import APPROVAL_LINK
from notifications.links import queue_link_messages
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
