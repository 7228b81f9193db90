"""Emails caused by a flow's state changes, queued in the same transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from approvals.config import Settings
from approvals.models import ApprovalRequest, Cycle
from approvals.plan import Plan
from approvals.presentation import person_context, step_context
from approvals.requests import NewAssignment
from approvals.tokens import APPROVAL_LINK, approval_link_argument
from notifications.dispatcher import placeholder
from notifications.outbox import Recipient, enqueue
from notifications.render import Renderer


def mail_domain(settings: Settings) -> str:
    return settings.mail_from.rsplit("@", 1)[-1]


async def queue_link_emails(session: AsyncSession, *, kind: str, plan: Plan, settings: Settings, renderer: Renderer,
                            request: ApprovalRequest, cycle: Cycle, notify: list[NewAssignment]) -> None:
    """One email with a personal link per assignee: a request, a reminder or an escalation.

    Keyed by the assignment and its link generation, so a re-run queues nothing twice.
    """
    for new in notify:
        language = new.official.language.value
        generation = new.assignment.token_generation
        email = renderer.render(
            kind, language, **person_context(new.official, language),
            **step_context(plan, request, cycle, language=language, tz=settings.tz),
            link=placeholder(APPROVAL_LINK, approval_link_argument(new.assignment.id, generation)),
        )
        await enqueue(session, idempotency_key=f"{kind}:{new.assignment.id}:{generation}", kind=kind,
                      to=[Recipient(new.official.name, str(new.official.email))], email=email,
                      domain=mail_domain(settings))
