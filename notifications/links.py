"""Queue personal-link emails (request, reminder, escalation) described by plain data.

The link itself is a placeholder that the dispatcher resolves as it sends, so no
secret token is ever written to the outbox.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from approvals.tokens import APPROVAL_LINK, PROBLEM_LINK, QUEUE_LINK
from approvals.wording.message_types import Context
from notifications.composing import placeholder
from notifications.invites import invite, sequence_at
from notifications.outbox import Attachment, Outgoing, Recipient, Thread, enqueue_many
from notifications.render import Renderer


# Read-only members: the messages are frozen dataclasses (approvals.wording.messages).
class PlainMessageLike(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def context(self) -> Context: ...


class CalendarMessageLike(PlainMessageLike, Protocol):
    @property
    def request_id(self) -> str: ...  # the event is one per request and official
    @property
    def official_id(self) -> str: ...
    @property
    def due(self) -> dt.datetime | None: ...


class LinkMessageLike(CalendarMessageLike, Protocol):
    @property
    def link_argument(self) -> str: ...
    @property
    def problem_argument(self) -> str: ...  # "" for none


def _deadline(
    message: CalendarMessageLike, *, domain: str, organizer: tuple[str, str] | None, cancelled: bool = False
) -> list[Attachment]:
    """The .ics for the message's deadline event, when it has one (a cancel carries a later SEQUENCE)."""
    if organizer is None or message.due is None or not message.request_id:
        return []
    sequence = sequence_at(dt.datetime.now(dt.UTC)) + (1 if cancelled else 0)
    return [
        invite(
            request_id=message.request_id,
            assignee_id=message.official_id,
            domain=domain,
            due=message.due,
            summary=f"{message.context.get('stage', '')} – {message.context.get('cycle', '')}",
            organizer=organizer,
            attendee=(message.name, message.email),
            sequence=sequence,
            language=message.language,
            cancelled=cancelled,
        )
    ]


def _outgoing(
    renderer: Renderer,
    message: PlainMessageLike,
    *,
    attachments: list[Attachment] | None = None,
    reply_to: str | None = None,
    thread: Thread | None = None,
    **extra: str,
) -> Outgoing:
    email = renderer.render(message.kind, message.language, **message.context, **extra)
    recipients = [Recipient(message.name, message.email)]
    return Outgoing(message.key, message.kind, recipients, email, attachments or [], reply_to=reply_to, thread=thread)


async def queue_link_messages(
    session: AsyncSession,
    *,
    renderer: Renderer,
    messages: Iterable[LinkMessageLike],
    link_name: str,
    domain: str,
    organizer: tuple[str, str] | None = None,
    reply_name: str | None = None,
    thread: Thread | None = None,
) -> int:
    """Render and queue each message (one statement for all); with an organizer (name,
    address) and a due time, the email carries a calendar invite for the deadline (a later
    email updates the same event). With `reply_name`, each email's Reply-To is that
    placeholder for the message's link argument: the reply address of the same assignment and
    generation, written by the dispatcher as it sends. With `thread`, each email answers the
    recipient's own (an answer to their emailed reply)."""
    return len(
        await enqueue_many(
            session,
            [
                _outgoing(
                    renderer,
                    message,
                    attachments=_deadline(message, domain=domain, organizer=organizer),
                    reply_to=placeholder(reply_name, message.link_argument) if reply_name else None,
                    link=placeholder(link_name, message.link_argument),
                    problem=placeholder(PROBLEM_LINK, message.problem_argument) if message.problem_argument else "",
                    thread=thread,
                )
                for message in messages
            ],
            domain=domain,
        )
    )


async def queue_closing_messages(
    session: AsyncSession,
    *,
    renderer: Renderer,
    messages: Iterable[CalendarMessageLike],
    domain: str,
    organizer: tuple[str, str] | None,
    thread: Thread | None = None,
) -> int:
    """Render and queue emails that end a step for their recipient (a receipt, a step decided
    by someone else): each cancels the deadline event its request email put in their calendar.
    With `thread`, each answers the recipient's own email (a receipt of their emailed reply)."""
    return len(
        await enqueue_many(
            session,
            [
                _outgoing(
                    renderer,
                    message,
                    attachments=_deadline(message, domain=domain, organizer=organizer, cancelled=True),
                    thread=thread,
                )
                for message in messages
            ],
            domain=domain,
        )
    )


async def queue_plain_messages(
    session: AsyncSession,
    *,
    renderer: Renderer,
    messages: Iterable[PlainMessageLike],
    domain: str,
    attachments: Sequence[Attachment] = (),
    thread: Thread | None = None,
) -> int:
    """Render and queue emails that carry no personal link (outcomes, digests, alerts, the
    issued report), each with `attachments` (and answering the recipient's own, with `thread`)."""
    return len(
        await enqueue_many(
            session,
            [_outgoing(renderer, message, attachments=list(attachments), thread=thread) for message in messages],
            domain=domain,
        )
    )


class DigestMessageLike(PlainMessageLike, Protocol):
    @property
    def links(self) -> list[str]: ...  # each step's link argument, in the order of context["steps"]
    @property
    def queue_argument(self) -> str: ...


async def queue_digest_messages(
    session: AsyncSession, *, renderer: Renderer, messages: Iterable[DigestMessageLike], domain: str
) -> int:
    """Render and queue daily digests: each step's row gets its approval link and the email its
    queue link, both as placeholders the dispatcher writes as it sends."""
    outgoing = []
    for message in messages:
        steps = message.context["steps"]
        assert isinstance(steps, list)
        links = [placeholder(APPROVAL_LINK, link) for link in message.links]
        rows = [{**row, "link": link} for row, link in zip(steps, links, strict=True)]
        email = renderer.render(
            message.kind,
            message.language,
            **{**message.context, "steps": rows},
            link=placeholder(QUEUE_LINK, message.queue_argument),
        )
        outgoing.append(Outgoing(message.key, message.kind, [Recipient(message.name, message.email)], email, []))
    return len(await enqueue_many(session, outgoing, domain=domain))
