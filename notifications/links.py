"""Queue personal-link emails (request, reminder, escalation) described by plain data.

The link itself is a placeholder that the dispatcher resolves as it sends, so no
secret token is ever written to the outbox.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from notifications.calendar import invite, sequence_at
from notifications.dispatcher import placeholder
from notifications.outbox import Recipient, enqueue
from notifications.render import Renderer


class PlainMessageLike(Protocol):
    kind: str
    key: str
    language: str
    name: str
    email: str
    context: dict[str, str]


class LinkMessageLike(PlainMessageLike, Protocol):
    link_argument: str
    request_id: str
    official_id: str
    due: dt.datetime | None


async def _queue(session: AsyncSession, renderer: Renderer, message: PlainMessageLike, *, domain: str,
                 attachments: list | None = None, **extra: str) -> bool:
    email = renderer.render(message.kind, message.language, **message.context, **extra)
    stored = await enqueue(session, idempotency_key=message.key, kind=message.kind,
                           to=[Recipient(message.name, message.email)], email=email, domain=domain,
                           attachments=attachments or [])
    return stored is not None


async def queue_link_messages(session: AsyncSession, *, renderer: Renderer, messages: Iterable[LinkMessageLike],
                              link_name: str, domain: str, organizer: tuple[str, str] | None = None) -> int:
    """Render and queue each message; with an organizer (name, address) and a due time, the
    email carries a calendar invite for the deadline (a later email updates the same event)."""
    queued = 0
    for message in messages:
        attachments = []
        if organizer is not None and message.due is not None and message.request_id:
            attachments.append(invite(
                request_id=message.request_id, assignee_id=message.official_id,
                domain=domain, due=message.due, summary=f"{message.context.get('stage', '')} – "
                f"{message.context.get('cycle', '')}", organizer=organizer, attendee=(message.name, message.email),
                sequence=sequence_at(dt.datetime.now(dt.UTC)), language=message.language))
        queued += await _queue(session, renderer, message, domain=domain, attachments=attachments,
                               link=placeholder(link_name, message.link_argument))
    return queued


async def queue_plain_messages(session: AsyncSession, *, renderer: Renderer, messages: Iterable[PlainMessageLike],
                               domain: str) -> int:
    """Render and queue emails that carry no personal link (outcomes, digests, alerts)."""
    queued = 0
    for message in messages:
        queued += await _queue(session, renderer, message, domain=domain)
    return queued
