"""The one interface every channel speaks: a `ChannelMessage` in, a `Delivery` out.

A send names its recipient (a phone number or an email address), the message kind (one of
`KINDS`, the emails that ask an official to act or tell them of a step), the kind's
parameters (the email template's values: `name`, `stage`, `due`, `link`...) and an
idempotency key, which the adapter hands to its provider (ZNS `tracking_id`, eSMS
`RequestId`, the email's Message-ID) so that a send retried after a dispatcher died never
reaches the official twice where the provider refuses duplicates.

A `Delivery` is what the outbox acts on: `sent` (with the provider's message id), `retryable`
(the provider was unreachable, slow, or said "later": the same channel again with back-off)
or `permanent` (the provider refused this message for good: the next channel). Adapters
never raise for a provider's answer; they raise only for our own mistakes (a kind with no
template: `channels.templates.UnknownKind`).

"Sent" is the provider taking the message, not the phone receiving it. A channel that can say
more answers `report(provider_id, recipient)` with a `DeliveryReport`: delivered (and when),
undelivered (the next channel), or pending (asked again later; `notifications.delivery_reports`
falls back when no report comes within the set time).

Quiet hours: ZNS sends transaction messages at any hour, and other kinds only from 07:00
to 22:00 (Vietnam time); `quiet_until` says when a kind may next be sent. Which kinds are
transactions is decided here, once: what asks an official to act on a step now (a request,
an escalation, a form to submit) is one; reminders and notices wait for the morning.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol
from zoneinfo import ZoneInfo

from approvals.errors import InvalidInput

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
CHANNELS = ("zalo", "sms", "email")  # the names a plan file lists an official's channels by

# The kinds sent on every channel, and whether each is a transaction (sent at any hour).
KINDS: dict[str, bool] = {
    "approval_request": True,
    "submission_request": True,
    "resubmission_request": True,
    "escalation": True,
    "reminder": False,
    "step_overdue": False,
    "submission_overdue": False,
    "report_issued": False,
}
DAY_STARTS = dt.time(7, 0)
DAY_ENDS = dt.time(22, 0)


class UnknownKind(InvalidInput):
    """A message kind no channel has a template for."""


def is_transaction(kind: str) -> bool:
    """Whether ZNS may send `kind` at any hour (otherwise only 07:00-22:00, Vietnam time)."""
    try:
        return KINDS[kind]
    except KeyError:
        raise UnknownKind(f"no channel sends the kind {kind!r} (known: {', '.join(KINDS)})") from None


def quiet_until(kind: str, now: dt.datetime) -> dt.datetime | None:
    """None when `kind` may be sent at `now` (aware); else the next 07:00 in Vietnam, when it may."""
    if is_transaction(kind):
        return None
    local = now.astimezone(VIETNAM)
    if DAY_STARTS <= local.time() < DAY_ENDS:
        return None
    day = local.date() if local.time() < DAY_STARTS else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, DAY_STARTS, tzinfo=VIETNAM)


class DeliveryStatus(str, Enum):
    sent = "sent"
    retryable = "retryable"  # the same channel again, later
    permanent = "permanent"  # never on this channel: the next one


@dataclass(frozen=True)
class ChannelMessage:
    recipient: str  # a phone number (any Vietnamese form: 09..., +849..., 849...) or an email address
    kind: str  # one of KINDS
    params: Mapping[str, str]  # the email template's values for the kind (link: the personal link)
    idempotency_key: str  # the outbox row's key: the provider's tracking id
    language: str = "vi"


@dataclass(frozen=True)
class Delivery:
    status: DeliveryStatus
    provider_id: str = ""  # the provider's message id (ZNS msg_id, eSMS SMSID, the Message-ID)
    error_code: str = ""  # the provider's own code ("-118", "103", "550", "timeout", "http-503")
    detail: str = ""  # for a person reading the outbox
    extra: Mapping[str, str] = field(default_factory=dict)  # what else the provider answered (sent_time...)
    awaits_report: bool = True  # False: the provider will never report on it (eSMS's sandbox)

    @property
    def sent(self) -> bool:
        return self.status is DeliveryStatus.sent

    @classmethod
    def delivered(cls, provider_id: str, detail: str = "", *, awaits_report: bool = True, **extra: str) -> Delivery:
        return cls(
            DeliveryStatus.sent, provider_id=provider_id, detail=detail, extra=extra, awaits_report=awaits_report
        )

    @classmethod
    def retry(cls, error_code: str, detail: str) -> Delivery:
        return cls(DeliveryStatus.retryable, error_code=error_code, detail=detail)

    @classmethod
    def refused(cls, error_code: str, detail: str) -> Delivery:
        return cls(DeliveryStatus.permanent, error_code=error_code, detail=detail)


class ReportState(str, Enum):
    delivered = "delivered"  # on the official's phone
    undelivered = "undelivered"  # the provider gave up: the next channel
    pending = "pending"  # not known yet (or the provider could not be asked): ask again later


@dataclass(frozen=True)
class DeliveryReport:
    state: ReportState
    at: dt.datetime | None = None  # when the phone received it, where the provider says
    error_code: str = ""
    detail: str = ""

    @classmethod
    def pending(cls, error_code: str = "", detail: str = "") -> DeliveryReport:
        return cls(ReportState.pending, error_code=error_code, detail=detail)


class Channel(Protocol):
    """A way to reach an official: `name` is one of CHANNELS."""

    name: str

    async def send(self, message: ChannelMessage) -> Delivery: ...


class ReportingChannel(Channel, Protocol):
    """A channel whose provider reports whether a message it took reached the phone."""

    async def report(self, provider_id: str, recipient: str) -> DeliveryReport: ...
