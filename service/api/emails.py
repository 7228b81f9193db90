"""The link emails an action causes, queued in the action's own transaction."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from approvals.coordination import Acted
from approvals.presentation import link_messages, submission_message
from approvals.submissions import SUBMISSION_LINK
from approvals.tokens import APPROVAL_LINK
from notifications.links import queue_link_messages
from service.deps import AppState


async def queue_links(session: AsyncSession, app: AppState, acted: Acted, *, kind: str) -> int:
    if acted.submission is not None:  # a reminder to submit: the same form link again
        message = submission_message(app.plan, acted.request, acted.cycle, acted.submission, tz=app.settings.tz,
                                     reminder=f"manual-{uuid.uuid4().hex[:12]}")
        return await queue_link_messages(session, renderer=app.renderer, messages=[message],
                                         link_name=SUBMISSION_LINK, organizer=app.organizer, domain=app.mail_domain)
    if not acted.notify:
        return 0
    messages = link_messages(app.plan, acted.request, acted.cycle, acted.notify, kind=kind, tz=app.settings.tz)
    return await queue_link_messages(session, renderer=app.renderer, messages=messages, link_name=APPROVAL_LINK, organizer=app.organizer,
                                     domain=app.mail_domain)
