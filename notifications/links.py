"""Queue personal-link emails (request, reminder, escalation) described by plain data.

The link itself is a placeholder that the dispatcher resolves as it sends, so no
secret token is ever written to the outbox.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from notifications.dispatcher import placeholder
from notifications.outbox import Recipient, enqueue
from notifications.render import Renderer


class LinkMessageLike(Protocol):
    kind: str
    key: str
    language: str
    name: str
    email: str
    context: dict[str, str]
    link_argument: str


async def queue_link_messages(session: AsyncSession, *, renderer: Renderer, messages: Iterable[LinkMessageLike],
                              link_name: str, domain: str) -> int:
    queued = 0
    for message in messages:
        email = renderer.render(message.kind, message.language, **message.context,
                                link=placeholder(link_name, message.link_argument))
        stored = await enqueue(session, idempotency_key=message.key, kind=message.kind,
                               to=[Recipient(message.name, message.email)], email=email, domain=domain)
        queued += stored is not None
    return queued
