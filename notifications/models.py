"""The outbox: one row per email, written in the transaction of the change that causes it."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import Enum
from typing import Protocol, TypedDict

from sqlalchemy import JSON, Index, LargeBinary, String, Text, TextClause, text
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


class ZaloToken(Base):
    """The Zalo OA's tokens, one row per Zalo app: the access token (about 25 h) and the refresh
    token (single use, 3 months) that makes the next one. Every process reads it here; one at a
    time refreshes it, under this row's lock (`notifications.channels.zalo_token`). A refresh that
    failed for good is kept (`failed_at`, `failure`) until someone authorises the OA again."""

    __tablename__ = "zalo_token"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_token: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, doc="When the access token stops working.")
    refreshed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    generation: Mapped[int] = mapped_column(default=0, doc="Refreshes so far: a failure is told once per generation.")
    failed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    failure: Mapped[str | None] = mapped_column(Text, doc="Why the last refresh failed for good (Zalo's answer).")


class ShortLink(Base):
    """A short link of an SMS (`notifications.short_links`): `<public host>/l/<code>` redirects to
    the message's personal link. Made by the channel that sends the SMS, as it sends it (the
    personal link exists only then: the outbox holds a placeholder), so it lives here with the
    outbox and not with the tokens, which stay derived and unstored. The code is kept only as its
    keyed hash, and the target only sealed under a key derived from the code: this table alone
    opens nothing, as `assignment.token_hash` opens nothing."""

    __tablename__ = "short_link"
    __table_args__ = (Index("ix_short_link_expires_at", "expires_at"),)

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True, doc="HMAC-SHA-256 of the code (hex).")
    sealed_target: Mapped[bytes] = mapped_column(LargeBinary, doc="The target link, AES-GCM under the code's key.")
    official_id: Mapped[str] = mapped_column(String(64), doc="Whom the link was made for (the SMS's recipient).")
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, doc="The target's own expiry.")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


SHORT_LINK_TABLE = table_of(ShortLink.__table__)


class StoredAddress(TypedDict):
    """One of `ChannelOutboxMessage.fallbacks`: a channel still to try, and its address."""

    channel: str
    address: str


class ChannelOutboxMessage(Base):
    """One message to an official on a phone channel (Zalo, SMS), queued beside the email it
    repeats, in the same transaction (`notifications.channel_outbox`). A sibling of
    `outbox_message`, not more rows in it: an email row needs a subject, bodies, a Message-ID and
    attachments, a channel message a phone, a kind and its parameters. The claim, lease, fence
    and back-off columns are the same, and so is the code that works them (`approvals.db.claim`,
    `notifications.dispatcher.RetryPolicy`; `notifications.channel_dispatcher`).

    A permanent failure (or retries spent) ends the row `failed` and queues the next of
    `fallbacks` as a row of its own (`fallback_key` names it); past the last phone channel the
    email, queued from the start, is what reaches the official."""

    __tablename__ = "channel_message"
    __table_args__ = (
        Index("ix_channel_message_due", "next_attempt_at", **_in_state(MessageStatus.queued)),
        Index("ix_channel_message_lease", "lease_until", **_in_state(MessageStatus.sending)),
        Index("ix_channel_message_email_key", "email_key"),
        Index("ix_channel_message_attempted", "attempted_at"),
        Index("ix_channel_message_report", "report_due_at", **_in_state(MessageStatus.sent)),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    idempotency_key: Mapped[str] = mapped_column(
        String(240), unique=True, doc="<the email's key>@<channel>: the provider's tracking_id / RequestId."
    )
    email_key: Mapped[str] = mapped_column(String(200), doc="The key of the email this message repeats.")
    kind: Mapped[str] = mapped_column(String(64))
    official_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16), doc="zalo or sms")
    recipient: Mapped[str] = mapped_column(String(32), doc="The phone, +84...")
    language: Mapped[str] = mapped_column(String(8), default="vi")
    params: Mapped[dict[str, str]] = mapped_column(
        JSON, doc="The email's values for the kind; a link is a placeholder, resolved as it is sent."
    )
    fallbacks: Mapped[list[StoredAddress]] = mapped_column(JSON, default=list, doc="The phone channels after this one.")
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.queued.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    provider_id: Mapped[str | None] = mapped_column(String(200), doc="The provider's message id (msg_id, SMSID).")
    error_code: Mapped[str | None] = mapped_column(String(64), doc="The provider's code of the last failure.")
    last_error: Mapped[str | None] = mapped_column(Text)
    fallback_key: Mapped[str | None] = mapped_column(String(240), doc="The message queued when this one fell back.")
    attempted_at: Mapped[dt.datetime | None] = mapped_column(
        UtcDateTime, doc="When the provider last answered (or failed to): what a failing channel is judged on."
    )
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    delivery: Mapped[str | None] = mapped_column(
        String(16),
        doc="What the provider reported of a sent message: delivered, undelivered, or unconfirmed (no report "
        "in time); null while none is in (or none will come).",
    )
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, doc="When it reached the phone.")
    report_due_at: Mapped[dt.datetime | None] = mapped_column(
        UtcDateTime, doc="When the provider is next asked for a report (null: nothing more to ask)."
    )


CHANNEL_TABLE = table_of(ChannelOutboxMessage.__table__)
