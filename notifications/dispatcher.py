"""Send queued messages over SMTP (aiosmtplib), retrying what can be retried.

Due messages are claimed a batch at a time with a lease and sent over a small pool of
reused SMTP connections (`pool_size`, default 4: one worker per connection, all at
once); the next batch is claimed while the last messages of the current one go out,
and the results are recorded in batches too. A dispatcher that dies leaves its lease
to run out, and another picks the messages up again. Several dispatchers may run at
once: on PostgreSQL the claim skips rows another one holds (FOR UPDATE SKIP LOCKED);
on SQLite every write transaction takes the database lock when it begins (BEGIN
IMMEDIATE). What is sent is written by notifications.mime (7-bit, RFC 2047 headers).

Never twice, as far as the protocol allows:
- a claim stamps each row with its lease end, and every later write of the round is
  fenced on that exact value: a dispatcher whose lease ran out cannot overwrite the
  row a newer claim owns;
- no message is started, and none is still being sent, within `lease_margin` seconds
  of the lease's end (a send still running then is cut off and retried later), so a
  message is not picked up again while its first send may still be in flight;
- the one case SMTP itself leaves open: the connection drops (or times out) after the
  message's data went out but before the server's answer came back. The message is
  retried and may arrive twice, always with the same Message-ID, which receiving
  systems and mail clients use to spot duplicates.

Failures are classified per message:
- connecting fails (refused, timeout, TLS, login, a 4xx/5xx greeting): the server is
  unavailable, not the message; the whole rest of the round waits with back-off, and
  such waits never make a message fail for good;
- a 4xx reply, a timeout or a dropped connection: retried with exponential back-off and
  jitter, failed after `RetryPolicy.max_attempts`;
- a 5xx reply (to MAIL, to every RCPT, or to DATA): failed at once;
- a reused connection found closed before the message's data was sent (the server
  dropped an idle connection): sent again at once on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import cast

import aiosmtplib
from sqlalchemy import ColumnElement, Table, any_, bindparam, or_, update
from sqlalchemy.dialects.postgresql import ARRAY

from approvals.db import Database, claim, dialect_name, utcnow
from notifications.composing import Composer, Resolver
from notifications.models import OUTBOX_TABLE, ClaimedMessage, MessageStatus
from notifications.send_round import SENT, Job, Outcome, Stream
from notifications.smtp import NETWORK_ERRORS, SmtpConfig, SmtpPool, SmtpUnavailable

log = logging.getLogger("kehoach.dispatcher")
_TABLE = OUTBOX_TABLE
# What sending needs of a claimed row (not the idempotency key, the kind, the last error...).
_CLAIMED = [
    _TABLE.c[name]
    for name in (
        "id",
        "message_id",
        "recipients",
        "subject",
        "text_body",
        "html_body",
        "reply_to",
        "thread_references",
        "attachments",
        "attempts",
        "next_attempt_at",
        "lease_until",
    )
]


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 5.0
    max_seconds: float = 3600.0
    max_attempts: int = 12
    lease_seconds: float = 120.0
    lease_margin: float = 10.0  # no send runs in the last seconds of a lease

    def delay(self, attempts: int) -> float:
        """Exponential backoff with full jitter."""
        growth: int = 2 ** max(0, attempts - 1)  # typeshed types int ** int as Any (a negative power is a float)
        return random.uniform(0.5, 1.0) * min(self.max_seconds, self.base_seconds * growth)


class Dispatcher:
    def __init__(
        self,
        db: Database,
        smtp: SmtpConfig,
        *,
        resolvers: dict[str, Resolver] | None = None,
        retry: RetryPolicy = RetryPolicy(),
        batch_size: int = 200,
        pool_size: int = 4,
        pool: SmtpPool | None = None,
        flush_size: int = 200,
        flush_interval: float = 1.0,
    ):
        self.db = db
        self.smtp = smtp
        self.resolvers = resolvers or {}
        self.retry = retry
        self.batch_size = batch_size
        self.pool = pool or SmtpPool(smtp, pool_size)
        self.flush_size = flush_size
        self.flush_interval = flush_interval
        self.stats: dict[str, int] = {"sent": 0, "retry": 0, "failed": 0, "release": 0}
        self.composer = Composer(smtp.sender_name, smtp.sender, self.resolvers)

    # -------------------------------------------------------------- building (notifications.composing)

    def build(self, message: ClaimedMessage) -> EmailMessage:
        return self.composer.build(message)

    def serialize(self, message: ClaimedMessage) -> bytes:
        return self.composer.serialize(message)

    # -------------------------------------------------------------- the database side

    async def claim(self, limit: int | None = None) -> tuple[list[ClaimedMessage], dt.datetime]:
        now = utcnow()
        lease = now + dt.timedelta(seconds=self.retry.lease_seconds)
        due = due_now(now, _TABLE)
        async with self.db.transaction() as session:
            # One statement, one round trip: the due rows are picked and leased at once.
            # Core, not ORM: rows with the same attribute names, without the ORM's per-object cost.
            claimed = await claim(
                session,
                _TABLE,
                due=due,
                order_by=_TABLE.c.next_attempt_at,
                limit=limit or self.batch_size,
                values=dict(status=MessageStatus.sending.value, lease_until=lease, attempts=_TABLE.c.attempts + 1),
                returning=list(_CLAIMED),
            )
        # Rows of the _CLAIMED columns: what a ClaimedMessage declares.
        rows = cast("Sequence[ClaimedMessage]", claimed)
        return sorted(rows, key=lambda message: message.next_attempt_at), lease

    def _values(self, message: ClaimedMessage, outcome: Outcome, now: dt.datetime) -> dict[str, object]:
        if outcome.status == "sent":
            return _sent_values(now, outcome.error)
        if outcome.status == "release":  # never started: as if it had not been claimed
            return dict(status=MessageStatus.queued.value, lease_until=None, attempts=_TABLE.c.attempts - 1)
        if outcome.status == "failed" or (not outcome.outage and message.attempts >= self.retry.max_attempts):
            return dict(status=MessageStatus.failed.value, lease_until=None, last_error=outcome.error)
        next_at = now + dt.timedelta(seconds=self.retry.delay(message.attempts))
        return dict(
            status=MessageStatus.queued.value, next_attempt_at=next_at, lease_until=None, last_error=outcome.error
        )

    async def _record(self, results: list[tuple[ClaimedMessage, Outcome]], lease: dt.datetime) -> None:
        await self.record_all([(message, outcome, lease) for message, outcome in results])

    async def record_all(self, results: list[tuple[ClaimedMessage, Outcome, dt.datetime]]) -> None:
        """Write outcomes in one transaction, each write fenced on the lease its claim wrote."""
        now = utcnow()
        sent: dict[dt.datetime, list[uuid.UUID]] = {}
        for message, outcome, lease in results:
            if outcome is SENT:
                sent.setdefault(lease, []).append(message.id)
        async with self.db.transaction() as session:
            postgres = dialect_name(session) == "postgresql"
            for lease, ids in sent.items():
                # On PostgreSQL one array parameter: the same SQL whatever the count, so it is
                # prepared once (an IN list is new SQL for every length).
                chosen = (
                    _TABLE.c.id == any_(bindparam("ids", ids, type_=_ID_ARRAY)) if postgres else _TABLE.c.id.in_(ids)
                )
                await session.execute(
                    update(_TABLE).where(chosen, *fence(lease)).values(**_sent_values(now, SENT.error))
                )
            for message, outcome, lease in results:
                if outcome is not SENT:
                    await session.execute(
                        update(_TABLE)
                        .where(_TABLE.c.id == message.id, *fence(lease))
                        .values(**self._values(message, outcome, now))
                    )
        for _message, outcome, _lease in results:
            self.stats[outcome.status] += 1

    # -------------------------------------------------------------- the SMTP side

    async def send(self, job: Job, data: bytes) -> Outcome:
        """Send one message on a pooled connection; a stale reused connection is replaced once."""
        for attempt in (1, 2):
            try:
                connection = await self.pool.acquire()
            except (aiosmtplib.SMTPException, *NETWORK_ERRORS) as exc:
                raise SmtpUnavailable(f"connect: {type(exc).__name__}: {exc}") from exc
            reused = connection.uses > 0  # it has carried a transaction before: it may have gone stale
            connection.uses += 1
            client = connection.client
            data_started = False
            try:
                await client.mail(self.smtp.sender)
                refused = []
                recipients = [recipient["email"] for recipient in job.message.recipients]
                for address in recipients:
                    try:
                        await client.rcpt(address)
                    except aiosmtplib.SMTPRecipientRefused as exc:
                        refused.append(exc)
                if len(refused) == len(recipients):
                    await client.rset()
                    self.pool.release(connection)
                    return Outcome(
                        "failed" if all(500 <= r.code < 600 for r in refused) else "retry",
                        "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in refused),
                    )
                data_started = True
                await client.data(data)
            except aiosmtplib.SMTPResponseException as exc:
                permanent = 500 <= exc.code < 600
                if exc.code == 421:  # the server is closing this connection
                    self.pool.discard(connection)
                    if reused and not data_started and attempt == 1:
                        continue
                elif data_started:
                    self.pool.release(connection)
                else:
                    try:
                        await client.rset()
                    except (aiosmtplib.SMTPException, *NETWORK_ERRORS):
                        self.pool.discard(connection)
                    else:
                        self.pool.release(connection)
                log.warning(
                    "SMTP answered %s for %s (%s)",
                    exc.code,
                    job.message.message_id,
                    "permanent" if permanent else "will retry",
                )
                return Outcome("failed" if permanent else "retry", f"{exc.code} {exc.message}")
            except (aiosmtplib.SMTPException, *NETWORK_ERRORS, asyncio.CancelledError) as exc:
                self.pool.discard(connection)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                if reused and not data_started and attempt == 1:
                    continue  # an idle connection the server had closed: nothing was sent
                log.warning("SMTP unavailable for %s: %s (will retry)", job.message.message_id, exc)
                return Outcome("retry", f"{type(exc).__name__}: {exc}")
            else:
                self.pool.release(connection)
                if refused:
                    return Outcome(
                        "sent", "refused: " + "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in refused)
                    )
                return SENT
        raise AssertionError("unreachable")

    # -------------------------------------------------------------- running

    async def run_once(self, *, keep_connections: bool = False) -> int:
        """Claim and send one batch; return how many messages were handled.

        The pool's connections are closed afterwards unless `keep_connections`
        (then close them with `aclose()`)."""
        try:
            return await Stream(self, stop=None, once=True).run()
        finally:
            if not keep_connections:
                await self.pool.close()

    async def run_forever(self, *, interval: float = 2.0, stop: asyncio.Event | None = None) -> None:
        """Send until `stop` is set: batch after batch while full batches are due, else a look every `interval`.

        On stop, the sends in flight finish and messages claimed but not started go back to the queue."""
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                stream = Stream(self, stop=stop, once=False)
                try:
                    await stream.run()
                    idle = stream.exhausted
                except Exception:  # the loop must outlive a database hiccup
                    log.exception("dispatch round failed")
                    idle = True
                if idle:
                    await self.pool.prune()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=interval)
        finally:
            await self.pool.close()

    async def aclose(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> Dispatcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


_ID_ARRAY = ARRAY(_TABLE.c.id.type)


def _sent_values(now: dt.datetime, error: str | None) -> dict[str, object]:
    return dict(status=MessageStatus.sent.value, sent_at=now, lease_until=None, last_error=error)


def fence(lease: dt.datetime, table: Table = _TABLE) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """What every write after a claim is fenced on: the row is still being sent under that lease
    (the email outbox's rows, or a queue table with the same columns: `channel_message`)."""
    return table.c.status == MessageStatus.sending.value, table.c.lease_until == lease


def due_now(now: dt.datetime, table: Table = _TABLE) -> ColumnElement[bool]:
    """The rows a claim takes: queued and due, or still being sent under a lease that ran out
    (the sender died); the email outbox's, or a queue table with the same columns."""
    return or_(
        (table.c.status == MessageStatus.queued.value) & (table.c.next_attempt_at <= now),
        (table.c.status == MessageStatus.sending.value) & (table.c.lease_until < now),
    )
