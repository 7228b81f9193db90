"""The outbox: one row per email, written in the transaction of the change that causes it."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import Enum

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from approvals.db import Base, UtcDateTime, utcnow


class MessageStatus(str, Enum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    failed = "failed"


class OutboxMessage(Base):
    __tablename__ = "outbox_message"
    # What the dispatcher's claim filters on: without these it reads every row, bodies and all.
    __table_args__ = (
        Index("ix_outbox_message_due", "status", "next_attempt_at"),
        Index("ix_outbox_message_lease", "status", "lease_until"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    recipients: Mapped[list] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(500))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list] = mapped_column(JSON, default=list, doc="[{filename, content_type, data (base64)}]")
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.queued.value, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
