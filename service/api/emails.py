"""The link emails an action causes, queued in the action's own transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from approvals.coordination import Acted
from approvals.presentation import link_messages
from approvals.tokens import APPROVAL_LINK
from notifications.links import queue_link_messages
from service.deps import AppState


async def queue_links(session: AsyncSession, app: AppState, acted: Acted, *, kind: str) -> int:
    if not acted.notify:
        return 0
    messages = link_messages(app.plan, acted.request, acted.cycle, acted.notify, kind=kind, tz=app.settings.tz)
    return await queue_link_messages(session, renderer=app.renderer, messages=messages, link_name=APPROVAL_LINK, organizer=(app.settings.mail_from_name, app.settings.mail_from),
                                     domain=app.mail_domain)
