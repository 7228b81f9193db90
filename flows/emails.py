"""Emails caused by a flow's state changes, queued in the same transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from approvals.config import Settings
from approvals.models import ApprovalRequest, Cycle
from approvals.plan import Plan
from approvals.presentation import link_messages
from approvals.requests import NewAssignment
from approvals.tokens import APPROVAL_LINK
from notifications.links import queue_link_messages
from notifications.render import Renderer


def mail_domain(settings: Settings) -> str:
    return settings.mail_from.rsplit("@", 1)[-1]


async def queue_link_emails(session: AsyncSession, *, kind: str, plan: Plan, settings: Settings, renderer: Renderer,
                            request: ApprovalRequest, cycle: Cycle, notify: list[NewAssignment]) -> None:
    """One email with a personal link per assignee; a re-run queues nothing twice."""
    messages = link_messages(plan, request, cycle, notify, kind=kind, tz=settings.tz)
    await queue_link_messages(session, renderer=renderer, messages=messages, link_name=APPROVAL_LINK,
                              domain=mail_domain(settings))
