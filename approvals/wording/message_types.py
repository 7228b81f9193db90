"""The emails of the plan as data (`approvals.wording.messages` writes them): a plain email, one with a
personal link, one that closes a step, the values their templates are given, and what an
undelivered email tells the coordinators of."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Protocol, TypedDict

Context = dict[str, str | list[dict[str, str]]]
"""A template's values: texts, and tables of texts (the units overdue, a cycle's stages)."""


@dataclass(frozen=True)
class PlainMessage:
    """An email with no personal link (it may be forwarded)."""

    kind: str
    key: str
    language: str
    name: str
    email: str
    context: Context


@dataclass(frozen=True)
class LinkMessage(PlainMessage):
    """One personal-link email to write: who, in which language, about what, which link."""

    link_argument: str
    # The official's "Báo cáo vướng mắc" link (official:YYYYMMDD, signed when it is sent).
    problem_argument: str = ""
    # For the calendar invite: one event per request and official, ending at the due time.
    request_id: str = ""
    official_id: str = ""
    due: dt.datetime | None = None  # in the plan's time zone: its calendar invite is shown there


@dataclass(frozen=True)
class ClosingMessage(PlainMessage):
    """An email that ends a step for someone who had its deadline in their calendar: it
    carries the cancellation of that event (the same UID as the request's invite)."""

    request_id: str = ""
    official_id: str = ""
    due: dt.datetime | None = None  # in the plan's time zone, as the invite it cancels


class Recipient(TypedDict):
    """One addressee of an email: the name shown, and the address."""

    name: str
    email: str


class FailedDelivery(Protocol):
    """An email that could not be delivered, as the coordinators hear of it (an outbox row)."""

    id: uuid.UUID
    recipients: list[Recipient]
    subject: str
    last_error: str | None
    created_at: dt.datetime
