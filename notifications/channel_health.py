"""What ops see of the Zalo and SMS channels (`/metrics`, `kehoach status`): the messages of each
channel in each state, and which channel is failing.

A channel is failing when, within `WINDOW`, its provider answered at least `FAILING_AFTER`
messages with a failure (refused for good, or to be retried) and sent none: a template Zalo
withdrew, an eSMS balance spent, a provider down. A channel that fails some and sends others
is not (one official without a Zalo account is not an outage). The email, queued beside every
phone message, still reaches the officials meanwhile; what ops must do is in the last error.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from notifications.models import ChannelOutboxMessage, MessageStatus

WINDOW = dt.timedelta(hours=1)
FAILING_AFTER = 3


@dataclass(frozen=True)
class FailingChannel:
    channel: str
    failures: int  # answered with a failure within WINDOW, none sent
    error_code: str  # the provider's code of the latest
    detail: str

    def __str__(self) -> str:
        return (
            f"{self.channel}: {self.failures} failure(s) and no message sent in the last "
            f"{int(WINDOW.total_seconds() // 60)} min; latest {self.error_code}: {self.detail}"
        )


@dataclass(frozen=True)
class ChannelHealth:
    messages: dict[tuple[str, str], int]  # (channel, status) -> messages
    failing: list[FailingChannel]
    # (channel, delivered | undelivered | unconfirmed) -> sent messages, as their providers reported
    deliveries: dict[tuple[str, str], int] = field(default_factory=dict)


async def channel_health(session: AsyncSession, now: dt.datetime) -> ChannelHealth:
    table = ChannelOutboxMessage
    counts = await session.execute(
        select(table.channel, table.status, func.count()).group_by(table.channel, table.status)
    )
    messages = {(channel, status): count for channel, status, count in counts}
    reported = await session.execute(
        select(table.channel, table.delivery, func.count())
        .where(table.delivery.is_not(None))
        .group_by(table.channel, table.delivery)
    )
    deliveries = {(channel, str(delivery)): count for channel, delivery, count in reported}
    return ChannelHealth(messages, await failing_channels(session, now), deliveries)


async def failing_channels(session: AsyncSession, now: dt.datetime) -> list[FailingChannel]:
    """The channels failing at `now` (see the module)."""
    table = ChannelOutboxMessage
    recent = await session.execute(
        select(table.channel, table.status, table.error_code, table.last_error, table.attempted_at)
        .where(table.attempted_at >= now - WINDOW)
        .order_by(table.attempted_at.desc())
    )
    sent: set[str] = set()
    failures: dict[str, list[tuple[str, str]]] = {}
    for channel, status, code, detail, _at in recent:
        if status == MessageStatus.sent.value:
            sent.add(channel)
        elif code:
            failures.setdefault(channel, []).append((code, detail or ""))
    return [
        FailingChannel(channel, len(found), found[0][0], found[0][1])
        for channel, found in sorted(failures.items())
        if channel not in sent and len(found) >= FAILING_AFTER
    ]
