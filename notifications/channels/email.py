"""Email as a `Channel`: the kind's email template rendered with the message's values and sent
over the dispatcher's SMTP pool, its outcome read as a `Delivery`.

The dispatcher keeps sending the outbox's emails as it always has; this adapter is for the
outbox's channel sends, where email is one channel of an official's list (and the channel of
record for attachments and calendar invites, which stay with the dispatcher). It reuses
`Dispatcher.serialize` and `Dispatcher.send`, so what goes out and how SMTP answers are read
are the same: sent; a 4xx, a timeout or a dropped connection retryable; a 5xx permanent; a
server that cannot be reached (`SmtpUnavailable`) retryable. The Message-ID is made from the
idempotency key, so a message sent twice (the one case SMTP leaves open) carries the same one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field

from approvals.db import utcnow
from notifications.channels.base import ChannelMessage, Delivery
from notifications.composing import PermanentFailure
from notifications.dispatcher import Dispatcher
from notifications.models import StoredAttachment, StoredRecipient
from notifications.render import Renderer
from notifications.send_round import Batch, Job
from notifications.smtp import SmtpUnavailable


@dataclass
class _Email:
    """What `Dispatcher.send` needs of a message (a `ClaimedMessage`), made from a ChannelMessage."""

    id: uuid.UUID
    message_id: str
    recipients: list[StoredRecipient]
    subject: str
    text_body: str
    html_body: str
    reply_to: str | None = None
    thread_references: str | None = None
    attachments: list[StoredAttachment] = field(default_factory=list)
    attempts: int = 1
    next_attempt_at: dt.datetime = field(default_factory=utcnow)
    lease_until: dt.datetime | None = None


class EmailChannel:
    name = "email"

    def __init__(self, dispatcher: Dispatcher, renderer: Renderer, *, domain: str) -> None:
        self.dispatcher = dispatcher
        self.renderer = renderer
        self.domain = domain

    def message_id(self, key: str) -> str:
        return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{self.domain}>"

    async def send(self, message: ChannelMessage) -> Delivery:
        rendered = self.renderer.render(message.kind, message.language, **message.params)
        email = _Email(
            id=uuid.uuid4(),
            message_id=self.message_id(message.idempotency_key),
            recipients=[StoredRecipient(name=str(message.params.get("name", "")), email=message.recipient)],
            subject=rendered.subject,
            text_body=rendered.text,
            html_body=rendered.html,
        )
        try:
            data = self.dispatcher.serialize(email)
            outcome = await self.dispatcher.send(Job(email, Batch(lease_until=utcnow(), deadline=float("inf"))), data)
        except PermanentFailure as error:
            return Delivery.refused("message", str(error))
        except SmtpUnavailable as error:
            return Delivery.retry("unavailable", str(error))
        if outcome.status == "sent":
            return Delivery.delivered(email.message_id, outcome.error or "")
        code = (outcome.error or "").split(" ", 1)[0]
        code = code if code.isdigit() else "smtp"
        if outcome.status == "failed":
            return Delivery.refused(code, outcome.error or "")
        return Delivery.retry(code, outcome.error or "")
