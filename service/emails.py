"""Emails the web service queues for what a decision or a submission caused, in its transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from approvals.db import utcnow
from approvals.models import ApprovalRequest, Cycle
from approvals.presentation import submission_message, unrouted_messages
from approvals.submissions import SUBMISSION_LINK, SubmissionAsked, SubmissionUnrouted
from notifications.links import queue_link_messages, queue_plain_messages
from service.deps import AppState


async def queue_asked(app: AppState, session: AsyncSession, *, request: ApprovalRequest, cycle: Cycle,
                      asked: SubmissionAsked | SubmissionUnrouted) -> int:
    """A step sent back: its submitter's resubmission link, or, when nobody can be asked, an
    alert to the coordinators (a step never waits on an email that was never sent)."""
    if isinstance(asked, SubmissionAsked):
        message = submission_message(app.plan, request, cycle, asked, tz=app.settings.tz)
        return await queue_link_messages(session, renderer=app.renderer, messages=[message],
                                         link_name=SUBMISSION_LINK, organizer=app.organizer, domain=app.mail_domain)
    return await queue_plain_messages(session, renderer=app.renderer, domain=app.mail_domain, messages=unrouted_messages(
        app.plan, request, cycle, action=asked.action, at=utcnow(), tz=app.settings.tz,
        base_url=app.settings.public_base_url))
