"""Queue an official's Zalo or SMS message beside the email that asks them to act, in the
caller's transaction (`notifications.emails` calls it, as it queues the email).

Which messages: a kind with channel templates (`channels.base.KINDS`: requests, reminders,
escalations, overdue notices) to an official of the plan whose `reach()` on the day has a phone
channel (Zalo or SMS, each with the official's consent). The first phone channel is queued; the
others are kept on the row as its fallbacks (`notifications.channel_dispatcher` queues the next
when one refuses). The email is queued as before: it is the channel of record (attachments,
calendar invites) and the last fallback, already on its way.

Its key is `<the email's key>@<channel>`, unique: a replay of the same change queues nothing
twice, and the provider gets it as its idempotency key (ZNS `tracking_id`, eSMS `RequestId`).
Its parameters are the email's values for the kind; the personal link stays a placeholder,
resolved as the message is sent (no secret in the outbox). A kind that is not a transaction,
queued in the night (22:00-07:00, Vietnam), is due at 07:00 (`channels.base.quiet_until`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Iterable, Sequence
from typing import Protocol

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.db import core, dialect_name, utcnow
from approvals.plan import Official, Plan
from approvals.plan.reach import BY_PHONE, Address
from notifications.channels.base import KINDS, VIETNAM, quiet_until
from notifications.composing import placeholder
from notifications.links import PlainMessageLike
from notifications.models import CHANNEL_TABLE, MessageStatus, StoredAddress

_INSERT = {
    name: (
        insert(CHANNEL_TABLE)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .execution_options(preserve_rowcount=True)
    )
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


def channel_key(email_key: str, channel: str) -> str:
    return f"{email_key}@{channel}"


def phone_route(official: Official, day: dt.date, on: Collection[str]) -> list[StoredAddress]:
    """The official's phone channels on the day, in their order (consent given, a phone known),
    of those the deployment turned `on`."""
    reach: list[Address] = official.reach(day)
    return [
        StoredAddress(channel=a.channel.value, address=a.address)
        for a in reach
        if a.channel in BY_PHONE and a.channel.value in on
    ]


def _official(plan: Plan, message: PlainMessageLike) -> Official | None:
    official_id = getattr(message, "official_id", "")
    if official_id:
        return plan.official(official_id)
    address = message.email.lower()  # an overdue notice names its superior by address only
    return next((o for o in plan.officials if str(o.email).lower() == address), None)


def channel_row(
    *,
    email_key: str,
    kind: str,
    official_id: str,
    language: str,
    params: dict[str, str],
    route: Sequence[StoredAddress],
    now: dt.datetime,
) -> dict[str, object]:
    """The row of the first channel of `route` (the rest its fallbacks), due now or, for a kind
    that waits out the night, at 07:00."""
    first, *rest = route
    return dict(
        id=uuid.uuid4(),
        idempotency_key=channel_key(email_key, first["channel"]),
        email_key=email_key,
        kind=kind,
        official_id=official_id,
        channel=first["channel"],
        recipient=first["address"],
        language=language,
        params=params,
        fallbacks=list(rest),
        status=MessageStatus.queued.value,
        attempts=0,
        next_attempt_at=quiet_until(kind, now) or now,
        created_at=now,
    )


class FallingBack(Protocol):
    """What a message that fell back passes on to its next channel (a claimed row)."""

    email_key: str
    kind: str
    official_id: str
    language: str
    params: dict[str, str]
    fallbacks: list[StoredAddress]


def fallback_row(message: FallingBack, now: dt.datetime) -> dict[str, object] | None:
    """The row of the message's next phone channel (None past the last: the email, queued with
    the first, is what remains)."""
    if not message.fallbacks:
        return None
    return channel_row(
        email_key=message.email_key,
        kind=message.kind,
        official_id=message.official_id,
        language=message.language,
        params=message.params,
        route=message.fallbacks,
        now=now,
    )


async def insert_channel_row(session: AsyncSession, row: dict[str, object]) -> bool:
    """Insert one row; False when its key was queued before."""
    result = await core(session, _INSERT[dialect_name(session)], row)
    return bool(result.rowcount)


async def queue_phone_messages(
    session: AsyncSession,
    plan: Plan,
    messages: Iterable[PlainMessageLike],
    *,
    on: Collection[str],
    link: str = "",
    now: dt.datetime | None = None,
) -> int:
    """Queue each message's first phone channel of those `on` (see the module); `link` is the
    placeholder's name for a message's `link_argument` (a personal link). Returns how many were
    queued."""
    now = now or utcnow()
    day = now.astimezone(VIETNAM).date()
    queued = 0
    for message in messages:
        if message.kind not in KINDS:
            continue
        official = _official(plan, message)
        route = phone_route(official, day, on) if official is not None else []
        if official is None or not route:
            continue
        params = {name: value for name, value in message.context.items() if isinstance(value, str)}
        argument = getattr(message, "link_argument", "")
        if link and argument:
            params["link"] = placeholder(link, argument)
        row = channel_row(
            email_key=message.key,
            kind=message.kind,
            official_id=official.id,
            language=message.language,
            params=params,
            route=route,
            now=now,
        )
        queued += await insert_channel_row(session, row)
    return queued
