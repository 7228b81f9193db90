"""The link emails an action causes, queued in the action's own transaction."""

from __future__ import annotations

import logging

from jinja2 import TemplateNotFound
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.coordination import Acted
from approvals.presentation import link_messages
from approvals.tokens import APPROVAL_LINK
from notifications.links import queue_link_messages
from notifications.render import Renderer
from service.deps import AppState

log = logging.getLogger("kehoach.api")
FALLBACK_KIND = "approval_request"


def email_kind(renderer: Renderer, wanted: str) -> str:
    """`wanted` when its templates and subject exist, else a plain approval request.

    The reminder and escalation templates are being added to notifications/; until
    they are there, such emails go out as approval requests (same link, same facts).
    """
    if wanted == FALLBACK_KIND:
        return wanted
    try:
        renderer.env.get_template(f"{wanted}.txt.j2")
        renderer.env.get_template(f"{wanted}.html.j2")
    except TemplateNotFound:
        log.warning("no '%s' email template: sending '%s' instead", wanted, FALLBACK_KIND)
        return FALLBACK_KIND
    if f"{wanted}.subject" not in renderer.catalogue.messages:
        log.warning("no '%s.subject' message: sending '%s' instead", wanted, FALLBACK_KIND)
        return FALLBACK_KIND
    return wanted


async def queue_links(session: AsyncSession, app: AppState, acted: Acted, *, kind: str) -> int:
    if not acted.notify:
        return 0
    messages = link_messages(app.plan, acted.request, acted.cycle, acted.notify,
                             kind=email_kind(app.renderer, kind), tz=app.settings.tz)
    return await queue_link_messages(session, renderer=app.renderer, messages=messages, link_name=APPROVAL_LINK,
                                     domain=app.mail_domain)
