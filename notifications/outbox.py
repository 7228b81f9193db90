"""Queue an email in the caller's transaction: if the transaction rolls back, nothing is sent."""

from __future__ import annotations

import base64
import datetime as dt
import re
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.db import core, dialect_name, utcnow
from approvals.errors import InvalidInput
from notifications.models import OUTBOX_TABLE, OutboxMessage, StoredAttachment, StoredRecipient
from notifications.render import RenderedEmail

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
_CONTENT_TYPE = re.compile(
    r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*"
    r"(\s*;\s*[a-z0-9!#$&^_.+-]+=(\"[^\"\\\\]*\"|[a-z0-9!#$&^_.+-]+))*$",
    re.IGNORECASE,
)
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024  # in all, per message
MESSAGE_ID = re.compile(r"<[!-;=?-~]{1,250}>")  # one msg-id: printable ASCII in angle brackets, no space
MAX_SUBJECT = 500  # the column's length


# Built once: a Core INSERT with bound parameters skips the ORM's per-call statement building.
_INSERT = {
    name: (
        insert(OUTBOX_TABLE)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .execution_options(preserve_rowcount=True)
    )  # else psycopg (async) reports rowcount -1 for INSERT
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


_INSERT_RETURNING = {name: statement.returning(OUTBOX_TABLE.c.id) for name, statement in _INSERT.items()}


class MessageRefused(InvalidInput):
    """The outbox refuses a message before writing anything: an address that is not one, an
    attachment without a file name, of no content type or too large."""


class HeaderInjection(MessageRefused):
    """A subject, name or address carries a control character (CR, LF, ...)."""


@dataclass(frozen=True)
class Recipient:
    name: str
    email: str


@dataclass(frozen=True)
class Attachment:
    """A file sent with the message (e.g. a calendar invite from notifications.invites).

    It is stored in the outbox as it is: never put a secret (a link token) in one."""

    filename: str
    content_type: str  # e.g. 'text/calendar; method=REQUEST; charset=UTF-8'
    data: bytes


def _stored_attachments(attachments: Sequence[Attachment]) -> list[StoredAttachment]:
    stored: list[StoredAttachment] = []
    total = 0
    for attachment in attachments:
        filename = _clean_header(attachment.filename, "attachment filename")
        content_type = _clean_header(attachment.content_type, "attachment content type")
        if not filename.strip() or "/" in filename or "\\" in filename:
            raise MessageRefused(f"not a file name: {filename!r}")
        if not _CONTENT_TYPE.match(content_type):
            raise MessageRefused(f"not a content type: {content_type!r}")
        total += len(attachment.data)
        if total > MAX_ATTACHMENT_BYTES:
            raise MessageRefused(f"attachments larger than {MAX_ATTACHMENT_BYTES} bytes")
        stored.append(
            {
                "filename": filename,
                "content_type": content_type,
                "data": base64.b64encode(bytes(attachment.data)).decode("ascii"),
            }
        )
    return stored


def _clean_header(value: str, what: str) -> str:
    value = unicodedata.normalize("NFC", value)
    if _CONTROL.search(value):
        raise HeaderInjection(f"{what} contains a control character: {value!r}")
    return value


@dataclass(frozen=True)
class Thread:
    """Where an email goes in its recipient's conversation, as mail clients thread it: the
    Message-IDs it answers, oldest first (its References; the last is its In-Reply-To), and the
    subject it is sent with instead of its template's ("Re: …"), when one is known."""

    references: tuple[str, ...]
    subject: str | None = None

    @property
    def in_reply_to(self) -> str:
        return self.references[-1]


def _stored_references(thread: Thread | None) -> str | None:
    if thread is None or not thread.references:
        return None
    for message_id in thread.references:
        if not MESSAGE_ID.fullmatch(message_id):
            raise HeaderInjection(f"not a Message-ID: {message_id!r}")
    return " ".join(thread.references)


@dataclass(frozen=True)
class Outgoing:
    """One message to queue (see `enqueue`)."""

    idempotency_key: str
    kind: str
    to: list[Recipient]
    email: RenderedEmail
    attachments: Sequence[Attachment] = ()
    # The Reply-To: an address, or a placeholder the dispatcher resolves (a reply address's token
    # is a secret, as a link's is).
    reply_to: str | None = None
    thread: Thread | None = None  # the email answers one of the recipient's: threaded under it


class _Row(TypedDict):
    id: uuid.UUID
    idempotency_key: str
    message_id: str
    kind: str
    recipients: list[StoredRecipient]
    subject: str
    text_body: str
    html_body: str
    reply_to: str | None
    thread_references: str | None
    attachments: list[StoredAttachment]
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    created_at: dt.datetime


def _row(message: Outgoing, domain: str, now: dt.datetime) -> _Row:
    """The outbox row, after every header check (a bad one raises before anything is written)."""
    recipients: list[StoredRecipient] = []
    for person in message.to:
        name = _clean_header(person.name, "recipient name")
        address = _clean_header(person.email, "recipient address")
        if not _ADDRESS.match(address):
            raise MessageRefused(f"not a valid email address: {address!r}")
        recipients.append({"name": name, "email": address})
    message_uuid = uuid.uuid4()
    subject = message.thread.subject if message.thread and message.thread.subject else message.email.subject
    return _Row(
        id=message_uuid,
        idempotency_key=message.idempotency_key,
        message_id=f"<{message_uuid}@{domain}>",
        kind=message.kind,
        recipients=recipients,
        subject=_clean_header(subject, "subject")[:MAX_SUBJECT],
        text_body=message.email.text,
        html_body=message.email.html,
        reply_to=_clean_header(message.reply_to, "reply-to") if message.reply_to else None,
        thread_references=_stored_references(message.thread),
        attachments=_stored_attachments(message.attachments),
        status="queued",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


async def enqueue(
    session: AsyncSession,
    *,
    idempotency_key: str,
    kind: str,
    to: list[Recipient],
    email: RenderedEmail,
    domain: str,
    attachments: Sequence[Attachment] = (),
) -> uuid.UUID | None:
    """Queue one message; a second call with the same key stores nothing and returns None."""
    stored = await enqueue_many(session, [Outgoing(idempotency_key, kind, to, email, attachments)], domain=domain)
    return stored[0] if stored else None


async def enqueue_many(session: AsyncSession, messages: Sequence[Outgoing], *, domain: str) -> list[uuid.UUID]:
    """Queue several messages with one statement (a fan-out's emails); returns the ids stored.
    A key already queued, or repeated in the batch, stores nothing more. Every message is
    checked first: one bad header refuses them all, before anything is written."""
    now = utcnow()
    rows = [_row(message, domain, now) for message in messages]
    if not rows:
        return []
    if len(rows) == 1:  # a plain INSERT: one row needs no many-rows machinery
        result = await core(session, _INSERT[dialect_name(session)], rows[0])
        return [rows[0]["id"]] if result.rowcount else []
    result = await core(session, _INSERT_RETURNING[dialect_name(session)], rows)
    return list(result.scalars())


async def queued_keys(session: AsyncSession, keys: Sequence[str]) -> set[str]:
    """Which of these keys are queued already (in whatever state)."""
    if not keys:
        return set()
    rows = await session.execute(select(OutboxMessage.idempotency_key).where(OutboxMessage.idempotency_key.in_(keys)))
    return set(rows.scalars())


async def find(session: AsyncSession, idempotency_key: str) -> OutboxMessage | None:
    return (
        await session.execute(select(OutboxMessage).where(OutboxMessage.idempotency_key == idempotency_key))
    ).scalar()


async def failed_messages(session: AsyncSession, *, limit: int = 50) -> list[OutboxMessage]:
    """Messages that failed for good (5xx, or out of retries), newest first; alerts themselves excluded."""
    return list(
        (
            await session.execute(
                select(OutboxMessage)
                .where(OutboxMessage.status == "failed", OutboxMessage.kind != "delivery_failure")
                .order_by(OutboxMessage.created_at.desc())
                .limit(limit)
            )
        ).scalars()
    )
