"""Whether a Zalo or SMS message its provider took reached the official's phone: the providers'
delivery reports, asked by polling, recorded on the message's row, and the fallback when none
comes (issue 25: "a permanent failure, or no delivery report within a set time, falls back").

A sent row whose channel reports (`channels.base.ReportingChannel`) and whose provider gave a
message id is asked after `policy.every`, then every `every` again, until:
- delivered: `delivery` = delivered, `delivered_at` the provider's time (or when we heard);
- undelivered: `delivery` = undelivered, and the official's next phone channel is queued
  (`fallback_key`), as a refusal does in `notifications.channel_dispatcher`;
- no report by `sent_at + policy.within`: `delivery` = unconfirmed, and the same fallback.
"Not yet", or a provider that cannot be asked now (down, slow, its token refused), waits for the
next look; the window still closes on time. Past the last phone channel nothing more is
queued: the email, queued with the first message, is what remains.

The same claims as the sending: due rows (`sent`, `report_due_at` passed) are taken a batch at a
time (`approvals.db.claim`), which moves each one's `report_due_at` on by `every` and sets
`lease_until` as its fence. Two checkers never ask about one row at once; a checker that dies
leaves its rows to come due again. Every write is fenced on the lease, and the fallback is
queued only by the checker whose write took (its key is unique besides).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from sqlalchemy import update

from approvals.db import Database, claim, utcnow
from notifications.channel_outbox import FallingBack, fallback_row, insert_channel_row
from notifications.channels.base import Channel, Delivery, DeliveryReport, ReportingChannel, ReportState
from notifications.models import CHANNEL_TABLE, MessageStatus

log = logging.getLogger("kehoach.channels")
_TABLE = CHANNEL_TABLE
_SENT = MessageStatus.sent.value
_CLAIMED = [
    _TABLE.c[name]
    for name in (
        "id",
        "email_key",
        "kind",
        "official_id",
        "channel",
        "recipient",
        "language",
        "params",
        "fallbacks",
        "provider_id",
        "sent_at",
    )
]


@dataclass(frozen=True)
class ReportPolicy:
    """How often a provider is asked about a sent message, and how long a report may take
    before the message falls back to the next channel."""

    every: dt.timedelta = dt.timedelta(minutes=1)
    within: dt.timedelta = dt.timedelta(minutes=30)


class ClaimedSentMessage(FallingBack, Protocol):
    id: uuid.UUID
    channel: str
    recipient: str
    provider_id: str
    sent_at: dt.datetime


def reporting(channel: Channel | None) -> ReportingChannel | None:
    """The channel, where its provider reports deliveries."""
    return cast("ReportingChannel", channel) if callable(getattr(channel, "report", None)) else None


class DeliveryReports:
    """Asks the providers of `channels` about the messages they took; counts in `stats`
    (channel, delivered | undelivered | unconfirmed), the dispatcher's counter."""

    def __init__(
        self,
        db: Database,
        channels: Mapping[str, Channel],
        policy: ReportPolicy,
        stats: Counter[tuple[str, str]],
        *,
        batch_size: int = 50,
        concurrency: int = 4,
    ) -> None:
        self.db = db
        self.channels = channels
        self.policy = policy
        self.stats = stats
        self.batch_size = batch_size
        self.concurrency = concurrency

    def first_due(self, channel: str, delivery: Delivery, now: dt.datetime) -> dt.datetime | None:
        """When a message just sent is first asked about (None: no report will come)."""
        if reporting(self.channels.get(channel)) is None or not delivery.provider_id or not delivery.awaits_report:
            return None
        return now + self.policy.every

    async def check_once(self, *, now: dt.datetime | None = None) -> int:
        """Ask about one batch of due messages and record the answers; how many were asked."""
        now = now or utcnow()
        lease = now + self.policy.every
        due = (_TABLE.c.status == _SENT) & (_TABLE.c.report_due_at <= now)
        async with self.db.transaction() as session:
            rows = await claim(
                session,
                _TABLE,
                due=due,
                order_by=_TABLE.c.report_due_at,
                limit=self.batch_size,
                values=dict(report_due_at=lease, lease_until=lease),
                returning=list(_CLAIMED),
            )
        claimed = list(cast("Sequence[ClaimedSentMessage]", rows))
        if not claimed:
            return 0
        gate = asyncio.Semaphore(self.concurrency)

        async def one(message: ClaimedSentMessage) -> tuple[ClaimedSentMessage, DeliveryReport]:
            async with gate:
                return message, await self.ask(message)

        await self._record(await asyncio.gather(*(one(message) for message in claimed)), lease, now)
        return len(claimed)

    async def ask(self, message: ClaimedSentMessage) -> DeliveryReport:
        """The provider's report, bounded to half the time before the message is due again."""
        channel = reporting(self.channels.get(message.channel))
        if channel is None:
            return DeliveryReport.pending("channel-off", f"the {message.channel} channel is not turned on")
        try:
            return await asyncio.wait_for(
                channel.report(message.provider_id, message.recipient), self.policy.every.total_seconds() / 2
            )
        except TimeoutError:
            return DeliveryReport.pending("timeout", f"{message.channel} did not answer about the message in time")

    async def _record(
        self, results: Sequence[tuple[ClaimedSentMessage, DeliveryReport]], lease: dt.datetime, now: dt.datetime
    ) -> None:
        counted: list[tuple[str, str, bool]] = []
        async with self.db.transaction() as session:
            for message, report in results:
                values, outcome, after = self._values(message, report, now)
                written = await session.execute(
                    update(_TABLE)
                    .where(_TABLE.c.id == message.id, _TABLE.c.status == _SENT, _TABLE.c.lease_until == lease)
                    .values(**values)
                    .returning(_TABLE.c.id)
                )
                if written.first() is None:
                    continue  # another checker took the row after this one's lease ran out
                if after is not None:
                    await insert_channel_row(session, after)
                if outcome:
                    counted.append((message.channel, outcome, after is not None))
        for channel, outcome, fell_back in counted:
            self.stats[channel, outcome] += 1
            if outcome != ReportState.delivered.value:
                then = "the next phone channel has it" if fell_back else "the email remains"
                log.warning("a %s message did not reach the phone (%s); %s", channel, outcome, then)

    def _values(
        self, message: ClaimedSentMessage, report: DeliveryReport, now: dt.datetime
    ) -> tuple[dict[str, object], str, dict[str, object] | None]:
        """The row's new values, the outcome counted ("" for none yet), and the fallback's row."""
        done: dict[str, object] = dict(report_due_at=None, lease_until=None)
        if report.state is ReportState.delivered:
            return dict(done, delivery=report.state.value, delivered_at=report.at or now), report.state.value, None
        closes = message.sent_at + self.policy.within
        if report.state is ReportState.pending and now < closes:
            return dict(report_due_at=min(now + self.policy.every, closes), lease_until=None), "", None
        if report.state is ReportState.undelivered:
            outcome, why = "undelivered", report.detail or "the provider could not deliver it"
        else:
            minutes = int(self.policy.within.total_seconds() // 60)
            outcome = "unconfirmed"
            why = f"no delivery report within {minutes} min" + (f" (last: {report.detail})" if report.detail else "")
        after = fallback_row(message, now)
        values = dict(
            done,
            delivery=outcome,
            error_code=report.error_code or outcome,
            last_error=why,
            fallback_key=after["idempotency_key"] if after is not None else None,
        )
        return values, outcome, after
