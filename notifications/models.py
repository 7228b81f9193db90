"""The outbox: one row per email, written in the transaction of the change that causes it."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import Enum
from typing import Protocol, TypedDict

from sqlalchemy import JSON, Index, String, Text, TextClause, text
from sqlalchemy.orm import Mapped, mapped_column

from approvals.db import Base, UtcDateTime, table_of, utcnow


class MessageStatus(str, Enum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    failed = "failed"


class StoredRecipient(TypedDict):
    """One of `OutboxMessage.recipients`, as notifications.outbox writes it."""

    name: str
    email: str


class StoredAttachment(TypedDict):
    """One of `OutboxMessage.attachments`, as notifications.outbox writes it."""

    filename: str
    content_type: str
    data: str  # base64


class _PartialIndex(TypedDict):
    postgresql_where: TextClause
    sqlite_where: TextClause


def _in_state(status: MessageStatus) -> _PartialIndex:
    condition = text(f"status = '{status.value}'")
    return _PartialIndex(postgresql_where=condition, sqlite_where=condition)


class ClaimedMessage(Protocol):
    """What sending needs of an outbox row: an `OutboxMessage`, or the row the dispatcher claims
    with just these columns (`notifications.dispatcher`)."""

    id: uuid.UUID
    message_id: str
    recipients: list[StoredRecipient]
    subject: str
    text_body: str
    html_body: str
    reply_to: str | None
    thread_references: str | None
    attachments: list[StoredAttachment]
    attempts: int
    next_attempt_at: dt.datetime
    lease_until: dt.datetime | None


class OutboxMessage(Base):
    __tablename__ = "outbox_message"
    # What the dispatcher's claim and the dashboard ask, one partial index each: a row is
    # only in the index of the state it is in (a sent row in none), so moving it from
    # queued to sending to sent touches few indexes (migration 0009).
    __table_args__ = (
        Index("ix_outbox_message_due", "next_attempt_at", **_in_state(MessageStatus.queued)),
        Index("ix_outbox_message_lease", "lease_until", **_in_state(MessageStatus.sending)),
        Index("ix_outbox_message_failed", "created_at", **_in_state(MessageStatus.failed)),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    recipients: Mapped[list[StoredRecipient]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(500))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    reply_to: Mapped[str | None] = mapped_column(
        String(320), doc="The Reply-To address, or a placeholder the dispatcher resolves as it sends."
    )
    thread_references: Mapped[str | None] = mapped_column(
        Text,
        doc="The Message-IDs the email answers, oldest first, space-separated: its References header, the "
        "last one its In-Reply-To (an answer to an official's emailed reply, threaded under it).",
    )
    attachments: Mapped[list[StoredAttachment]] = mapped_column(
        JSON, default=list, doc="[{filename, content_type, data (base64)}]"
    )
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.queued.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


# The mapped class's Table, for Core statements.
OUTBOX_TABLE = table_of(OutboxMessage.__table__)


class ReplyHandling(str, Enum):
    """What became of an inbound reply: applied, or the first gate it failed (in the gates' order)."""

    applied = "applied"
    bad_token = "bad_token"  # not one of our reply addresses, or its token names no assignment
    closed_step = "closed_step"  # the step is settled, or no longer asked of that official
    already_decided = "already_decided"  # that official's decision was made before this reply
    not_the_approver = "not_the_approver"  # From is not the approver's own, nor a live delegate's
    not_authenticated = "not_authenticated"  # no DMARC or aligned DKIM pass from a trusted host
    automatic = "automatic"  # an out-of-office, a bounce, a list
    unreadable = "unreadable"  # no decision keyword on the first line, or a rejection without a comment
    refused = "refused"  # the decision's own rules refused it (acknowledge-only, separation of duties)
    # A Message-ID seen before: never stored (the first delivery's row stays as it was), only returned.
    duplicate = "duplicate"


class InboundReply(Base):
    """Every inbound reply, once: the unique Message-ID is what makes a second delivery (or a
    second receiver at once) apply nothing and answer nothing. Written in the transaction of the
    decision and its emails (`notifications.replies.applying`). The reply token is kept only as
    its hash, as on the assignment."""

    __tablename__ = "inbound_reply"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    message_id: Mapped[str] = mapped_column(
        String(255), unique=True, doc="The Message-ID, or 'sha256:<hex>' of the raw message when it has none."
    )
    reply_token_hash: Mapped[str | None] = mapped_column(String(64), doc="The reply address's token, hashed.")
    from_address: Mapped[str] = mapped_column(String(320), doc="The From address, lowercase ('' for none).")
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(32), doc="A ReplyHandling.")
    detail: Mapped[str] = mapped_column(Text, default="", doc="Why, for the log.")
    answered: Mapped[bool] = mapped_column(default=False, doc="Whether an answer to the sender was queued.")
