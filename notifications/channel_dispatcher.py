"""Send queued Zalo and SMS messages (`channel_message`, queued by `notifications.channel_outbox`)
through the channel adapters (`notifications.channels`), with the email outbox's rules.

The same claim, lease, fence and back-off as the email dispatcher, by the same code: due rows
are claimed a batch at a time with a lease (`approvals.db.claim`: FOR UPDATE SKIP LOCKED on
PostgreSQL, SQLite's writers take turns), every write after the claim is fenced on that lease
(`notifications.dispatcher.fence`), a retry waits `RetryPolicy.delay`, and no send runs past
the lease's end less its margin. Several dispatchers may run at once.

What each delivery does to its row:
- sent: `sent`, with the provider's message id (ZNS msg_id, eSMS SMSID);
- retryable (timeout, 5xx, "later"): queued again with back-off; after `max_attempts`, as a
  permanent failure;
- permanent (a refused template, no Zalo account, a channel not turned on): `failed`, with the
  provider's code, and the official's next phone channel is queued in the same transaction
  (`fallback_key` names it: zalo -> sms). Past the last phone channel nothing more is queued:
  the email, queued with the first message, is the last fallback.
- a kind that is not a transaction, due in the night (22:00-07:00, Vietnam): not sent; due
  again at 07:00, its attempt not counted (`channels.base.quiet_until`).

Never twice at the provider: the row's key is the provider's idempotency key (ZNS
`tracking_id`, eSMS `RequestId`). A dispatcher killed after the provider took a message but
before recording it leaves its lease to run out; the next claim sends again with the same key,
and eSMS answers "duplicate RequestId" (124), which is recorded as sent, not sent again. Zalo
does not document refusing a repeated `tracking_id`; for ZNS the lease is what keeps a message
from going out twice (`channels/zns.py`).

Sent is the provider taking the message. Whether it reached the phone is asked of the provider
afterwards (`notifications.delivery_reports`, run by the same loop): undelivered, or no report
within the set time, falls back to the next channel as a refusal does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from sqlalchemy import update

from approvals.db import Database, claim, utcnow
from notifications.channel_health import FailingChannel, failing_channels
from notifications.channel_outbox import fallback_row, insert_channel_row
from notifications.channels.base import Channel, ChannelMessage, Delivery, DeliveryStatus, UnknownKind, quiet_until
from notifications.composing import PermanentFailure, Resolver, personalise
from notifications.delivery_reports import DeliveryReports, ReportPolicy
from notifications.dispatcher import RetryPolicy, due_now, fence
from notifications.models import CHANNEL_TABLE, MessageStatus, StoredAddress
from notifications.short_links import short_link

log = logging.getLogger("kehoach.channels")
_TABLE = CHANNEL_TABLE
_CLAIMED = [
    _TABLE.c[name]
    for name in (
        "id",
        "idempotency_key",
        "email_key",
        "kind",
        "official_id",
        "channel",
        "recipient",
        "language",
        "params",
        "fallbacks",
        "attempts",
        "next_attempt_at",
    )
]


class ClaimedChannelMessage(Protocol):
    """The columns of a claimed `channel_message` row that sending needs."""

    id: uuid.UUID
    idempotency_key: str
    email_key: str
    kind: str
    official_id: str
    channel: str
    recipient: str
    language: str
    params: dict[str, str]
    fallbacks: list[StoredAddress]
    attempts: int
    next_attempt_at: dt.datetime


Result = Delivery | dt.datetime  # a delivery, or the 07:00 a kind waits for (quiet hours)
SHORTENED = frozenset({"sms"})  # a text message has room for a short link only (one or two segments)


@dataclass(frozen=True)
class ShortLinks:
    """How the SMS's links are shortened (`notifications.short_links`): the link secret, and how
    long a personal link made as the message goes stays valid (the settings' link lifetime)."""

    secret: bytes
    valid_for: dt.timedelta


class ChannelDispatcher:
    """Sends due channel messages on `channels` (name -> adapter: "zalo", "sms"); a channel the
    deployment has not turned on is a permanent failure of its messages (they fall back)."""

    def __init__(
        self,
        db: Database,
        channels: Mapping[str, Channel],
        *,
        resolvers: dict[str, Resolver] | None = None,
        retry: RetryPolicy = RetryPolicy(),
        batch_size: int = 50,
        concurrency: int = 4,
        short_links: ShortLinks | None = None,
        reports: ReportPolicy = ReportPolicy(),
        on_failing: Callable[[FailingChannel], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.channels = dict(channels)
        self.resolvers = resolvers or {}
        self.short_links = short_links
        self.retry = retry
        self.batch_size = batch_size
        self.concurrency = concurrency
        # (channel, sent | retry | fell_back | failed | deferred | delivered | undelivered | unconfirmed):
        # what /metrics counts.
        self.stats: Counter[tuple[str, str]] = Counter()
        self.reports = DeliveryReports(db, self.channels, reports, self.stats, batch_size=batch_size)
        self.on_failing = on_failing

    async def claim(self, now: dt.datetime) -> tuple[list[ClaimedChannelMessage], dt.datetime]:
        lease = now + dt.timedelta(seconds=self.retry.lease_seconds)
        due = due_now(now, _TABLE)
        async with self.db.transaction() as session:
            rows = await claim(
                session,
                _TABLE,
                due=due,
                order_by=_TABLE.c.next_attempt_at,
                limit=self.batch_size,
                values=dict(status=MessageStatus.sending.value, lease_until=lease, attempts=_TABLE.c.attempts + 1),
                returning=list(_CLAIMED),
            )
        return list(cast("Sequence[ClaimedChannelMessage]", rows)), lease

    async def deliver(self, message: ClaimedChannelMessage, *, now: dt.datetime, deadline: float) -> Result:
        """Send one message (or say when it may be sent); never raises for a provider's answer."""
        if (morning := quiet_until(message.kind, now)) is not None:
            return morning
        channel = self.channels.get(message.channel)
        if channel is None:
            return Delivery.refused("channel-off", f"the {message.channel} channel is not turned on")
        try:
            params = {name: personalise(value, self.resolvers) for name, value in message.params.items()}
        except PermanentFailure as error:
            return Delivery.refused("placeholder", str(error))
        if message.channel in SHORTENED and params.get("link") and self.short_links is not None:
            params["short_link"] = await self._shortened(params["link"], message.official_id, now)
        outgoing = ChannelMessage(
            recipient=message.recipient,
            kind=message.kind,
            params=params,
            idempotency_key=message.idempotency_key,
            language=message.language,
        )
        budget = deadline - time.monotonic()
        if budget <= 0:
            return Delivery.retry("lease", "not started: the lease was ending")
        try:
            return await asyncio.wait_for(channel.send(outgoing), budget)
        except TimeoutError:
            return Delivery.retry("lease", "cut off at the end of the lease")
        except UnknownKind as error:
            return Delivery.refused("kind", str(error))

    async def _shortened(self, link: str, official_id: str, now: dt.datetime) -> str:
        """The SMS's short link to its personal link (written as the SMS goes, the link made then),
        valid as long as the link is."""
        assert self.short_links is not None
        async with self.db.transaction() as session:
            return await short_link(
                session,
                link,
                official_id,
                now + self.short_links.valid_for,
                secret=self.short_links.secret,
                now=now,
            )

    async def record(
        self, results: Sequence[tuple[ClaimedChannelMessage, Result]], lease: dt.datetime, now: dt.datetime
    ) -> None:
        """Write every outcome in one transaction, each fenced on the claim's lease; a fallback
        is queued only by the dispatcher whose fenced write took."""
        counted: list[tuple[str, str]] = []
        async with self.db.transaction() as session:
            for message, result in results:
                values, outcome, after = self._values(message, result, now)
                written = await session.execute(
                    update(_TABLE)
                    .where(_TABLE.c.id == message.id, *fence(lease, _TABLE))
                    .values(**values)
                    .returning(_TABLE.c.id)
                )
                if written.first() is None:
                    continue  # a newer claim owns the row
                if after is not None:
                    await insert_channel_row(session, after)
                counted.append((message.channel, outcome))
        failed = set()
        for channel, outcome in counted:
            self.stats[channel, outcome] += 1
            if outcome in ("fell_back", "failed"):
                log.warning("a %s message could not be sent (%s)", channel, outcome)
            if outcome in ("fell_back", "failed", "retry"):
                failed.add(channel)
        if failed and self.on_failing is not None:
            await self._tell_failing(failed, now)

    async def _tell_failing(self, channels: set[str], now: dt.datetime) -> None:
        """After a round in which `channels` failed: tell of each one now failing
        (`channel_health`); `on_failing` tells once a day, however often it is called."""
        assert self.on_failing is not None
        async with self.db.reads() as session:
            failing = await failing_channels(session, now)
        for channel in failing:
            if channel.channel in channels:
                await self.on_failing(channel)

    def _values(
        self, message: ClaimedChannelMessage, result: Result, now: dt.datetime
    ) -> tuple[dict[str, object], str, dict[str, object] | None]:
        """The row's new values, the outcome counted, and the fallback's row to queue (or None)."""
        if isinstance(result, dt.datetime):  # quiet hours: not an attempt
            values = dict(
                status=MessageStatus.queued.value,
                next_attempt_at=result,
                lease_until=None,
                attempts=_TABLE.c.attempts - 1,
            )
            return values, "deferred", None
        failure: dict[str, object] = dict(
            lease_until=None, attempted_at=now, error_code=result.error_code or None, last_error=result.detail or None
        )
        if result.status is DeliveryStatus.sent:
            sent = dict(failure, status=MessageStatus.sent.value, sent_at=now, provider_id=result.provider_id)
            return dict(sent, report_due_at=self.reports.first_due(message.channel, result, now)), "sent", None
        if result.status is DeliveryStatus.retryable and message.attempts < self.retry.max_attempts:
            later = now + dt.timedelta(seconds=self.retry.delay(message.attempts))
            return dict(failure, status=MessageStatus.queued.value, next_attempt_at=later), "retry", None
        after = fallback_row(message, now)
        if after is None:
            return dict(failure, status=MessageStatus.failed.value), "failed", None
        values = dict(failure, status=MessageStatus.failed.value, fallback_key=after["idempotency_key"])
        return values, "fell_back", after

    async def run_once(self, *, now: dt.datetime | None = None) -> int:
        """Claim one batch, send it, record it; how many messages were claimed. `now` decides
        what is due and what the night holds back (the tests pass theirs)."""
        now = now or utcnow()
        claimed, lease = await self.claim(now)
        if not claimed:
            return 0
        deadline = time.monotonic() + self.retry.lease_seconds - self.retry.lease_margin
        gate = asyncio.Semaphore(self.concurrency)

        async def one(message: ClaimedChannelMessage) -> tuple[ClaimedChannelMessage, Result]:
            async with gate:
                return message, await self.deliver(message, now=now, deadline=deadline)

        results = await asyncio.gather(*(one(message) for message in claimed))
        await self.record(results, lease, now)
        return len(claimed)

    async def run_forever(self, *, interval: float = 2.0, stop: asyncio.Event | None = None) -> None:
        """Send until `stop` is set: batch after batch while there are due ones, else a look every `interval`.
        With no channel turned on nothing is queued (`Emails` queues only those), so there is
        nothing to look for: no claim, a write transaction, every `interval` for nothing."""
        if not self.channels:
            return
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                handled = await self.run_once()
                handled += await self.reports.check_once()
            except Exception:  # the loop must outlive a database hiccup
                log.exception("channel dispatch round failed")
                handled = 0
            if handled < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)

    async def aclose(self) -> None:
        """Close the channels' connections (an adapter that has any)."""
        for channel in self.channels.values():
            close = getattr(channel, "aclose", None)
            if close is not None:
                await close()
