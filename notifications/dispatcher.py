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
import base64
import contextlib
import datetime as dt
import functools
import logging
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr
from html import escape

import aiosmtplib
from sqlalchemy import any_, bindparam, or_, update
from sqlalchemy.dialects.postgresql import ARRAY

from approvals.db import Database, claim, utcnow
from approvals.errors import Refused
from notifications import mime
from notifications.models import MessageStatus, OutboxMessage
from notifications.smtp import _NETWORK_ERRORS, SmtpConfig, SmtpPool, SmtpUnavailable

log = logging.getLogger("kehoach.dispatcher")
_TABLE = OutboxMessage.__table__
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
        "attachments",
        "attempts",
        "next_attempt_at",
        "lease_until",
    )
]

PLACEHOLDER = re.compile(r"\[\[secret:([a-z_]+):([A-Za-z0-9:_-]+)\]\]")
Resolver = Callable[[str], str]

# 7-bit output (quoted-printable or base64 bodies, RFC 2047 headers): any relay accepts
# it, with or without 8BITMIME.
MIME_POLICY = SMTP_POLICY.clone(cte_type="7bit")


def placeholder(name: str, argument: str) -> str:
    """Text the dispatcher replaces when it sends, so secrets (link tokens) never sit in the outbox."""
    return f"[[secret:{name}:{argument}]]"


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 5.0
    max_seconds: float = 3600.0
    max_attempts: int = 12
    lease_seconds: float = 120.0
    lease_margin: float = 10.0  # no send runs in the last seconds of a lease

    def delay(self, attempts: int) -> float:
        """Exponential backoff with full jitter."""
        return random.uniform(0.5, 1.0) * min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1))


class PermanentFailure(Refused):
    pass


@dataclass(frozen=True)
class _Outcome:
    status: str  # sent | retry | failed | release
    error: str | None = None
    outage: bool = False  # the server was unreachable: not the message's fault


SENT = _Outcome("sent")
RELEASE = _Outcome("release")


@dataclass(frozen=True, eq=False)
class _Batch:
    lease_until: dt.datetime  # as written by the claim: the fence of every later write
    deadline: float  # loop time after which none of its sends may still run


@dataclass(eq=False)
class _Job:
    message: OutboxMessage
    batch: _Batch


class _Stream:
    """Batch after batch: claims ahead of the senders, records behind them.

    `pool.size` workers each hold one connection and take message after message; when
    the queue runs low the next batch is claimed in the background; outcomes are
    written in the background, `flush_size` at a time or every `flush_interval`.
    Ends after a claim that found nothing (the outbox is drained for now: `exhausted`),
    after one batch (`once`), on `stop`, or when the server cannot be reached. A claim
    that found less than a full batch does not end it: while emails are being queued
    (a fan-out, a busy web service) the next claim picks up what arrived meanwhile,
    instead of the dispatcher sleeping its poll interval with work waiting."""

    def __init__(self, dispatcher: Dispatcher, *, stop: asyncio.Event | None, once: bool):
        self.dispatcher = dispatcher
        self.stop = stop
        self.once = once
        self.jobs: deque[_Job] = deque()
        self.wake = asyncio.Event()
        self.claiming: asyncio.Task | None = None
        self.exhausted = False
        self.outage: str | None = None
        self.pending: list[tuple[OutboxMessage, _Outcome, dt.datetime]] = []
        self.flushing: asyncio.Task | None = None
        self.handled = 0
        self.low_water = max(2 * dispatcher.pool.size, dispatcher.batch_size // 2)

    @property
    def stopping(self) -> bool:
        return self.outage is not None or (self.stop is not None and self.stop.is_set())

    async def run(self) -> int:
        await self._claim()
        if not self.jobs:
            await self._flush_all()
            return self.handled
        ticker = asyncio.create_task(self._tick())
        workers = [asyncio.create_task(self._worker()) for _ in range(self.dispatcher.pool.size)]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        finally:
            ticker.cancel()
            if self.claiming is not None:
                await asyncio.gather(self.claiming, return_exceptions=True)
            # Not attempted: wait with back-off (server unreachable) or back to the queue (stopping).
            leftover = _Outcome("retry", self.outage, outage=True) if self.outage else RELEASE
            self.pending.extend((job.message, leftover, job.batch.lease_until) for job in self.jobs)
            self.jobs.clear()
            await self._flush_all()
        return self.handled

    # ---------------------------------------------------------------- claiming

    async def _claim(self) -> None:
        dispatcher = self.dispatcher
        try:
            messages, lease = await dispatcher._claim()
        finally:
            self.wake.set()
        if not messages or self.once:
            self.exhausted = True  # drained for now (or one batch asked): no claim ahead
        if not messages:
            return
        self.handled += len(messages)
        loop = asyncio.get_running_loop()
        batch = _Batch(lease, loop.time() + dispatcher.retry.lease_seconds - dispatcher.retry.lease_margin)
        self.jobs.extend(_Job(message, batch) for message in messages)
        self.wake.set()

    async def _claim_ahead(self) -> None:
        try:
            await self._claim()
        except Exception:
            log.exception("claiming the next batch failed")
            self.exhausted = True
        finally:
            self.claiming = None
            self.wake.set()

    async def _next(self) -> _Job | None:
        while not self.stopping:
            if len(self.jobs) <= self.low_water and not self.exhausted and self.claiming is None:
                self.claiming = asyncio.create_task(self._claim_ahead())
            if self.jobs:
                return self.jobs.popleft()
            if self.exhausted and self.claiming is None:
                return None
            self.wake.clear()
            await self.wake.wait()
        return None

    # ---------------------------------------------------------------- sending

    async def _worker(self) -> None:
        dispatcher = self.dispatcher
        loop = asyncio.get_running_loop()
        while (job := await self._next()) is not None:
            remaining = job.batch.deadline - loop.time()
            if remaining < min(dispatcher.smtp.timeout, dispatcher.retry.lease_seconds / 4):
                self._note(job, RELEASE)  # too close to the end of its lease to start
                continue
            # Written here, just before it goes out, not a whole batch at once after the claim:
            # the other connections' replies are not kept waiting behind a batch's worth of work.
            try:
                data = dispatcher.serialize(job.message)
            except Exception as exc:  # the message itself is broken: retrying cannot help
                log.error("cannot build %s: %s", job.message.message_id, exc)
                self._note(job, _Outcome("failed", f"cannot build the message: {exc}"))
                continue
            try:
                async with asyncio.timeout(remaining):
                    outcome = await dispatcher._send(job, data)
            except SmtpUnavailable as exc:
                log.warning("cannot connect to SMTP %s:%s: %s", dispatcher.smtp.host, dispatcher.smtp.port, exc)
                if self.outage is None:
                    self.outage = str(exc)
                self.jobs.appendleft(job)
                self.wake.set()
                return
            except TimeoutError:  # cut off at the lease deadline: it may or may not have gone out
                outcome = _Outcome("retry", "timeout: cut off before the lease ran out")
            self._note(job, outcome)

    # ---------------------------------------------------------------- recording

    def _note(self, job: _Job, outcome: _Outcome) -> None:
        self.pending.append((job.message, outcome, job.batch.lease_until))
        if len(self.pending) >= self.dispatcher.flush_size and self.flushing is None:
            self.flushing = asyncio.create_task(self._flush_in_background())

    async def _flush(self) -> None:
        pending, self.pending = self.pending, []
        if not pending:
            return
        try:
            await self.dispatcher._record_all(pending)
        except BaseException:
            self.pending[:0] = pending  # try again at the next flush
            raise

    async def _flush_in_background(self) -> None:
        try:
            await self._flush()
        except Exception as exc:
            log.warning("recording outcomes failed, will try again: %s", exc)
        finally:
            self.flushing = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.dispatcher.flush_interval)
            if self.flushing is None:
                self.flushing = asyncio.create_task(self._flush_in_background())

    async def _flush_all(self) -> None:
        for attempt in range(4):
            if self.flushing is not None:
                await asyncio.gather(self.flushing, return_exceptions=True)
            try:
                await self._flush()
                return
            except Exception:
                if attempt == 3:
                    raise
                log.warning("recording outcomes failed, trying again", exc_info=True)
                await asyncio.sleep(0.5 * (attempt + 1))


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
        self._date: tuple[int, str] = (0, "")

    # -------------------------------------------------------------- building

    def _personalise(self, body: str, *, html: bool = False) -> str:
        def replace(match: re.Match) -> str:
            resolver = self.resolvers.get(match.group(1))
            if resolver is None:
                raise PermanentFailure(f"no resolver for placeholder '{match.group(1)}'")
            value = resolver(match.group(2))
            return escape(value, quote=True) if html else value

        return PLACEHOLDER.sub(replace, body)

    def build(self, message: OutboxMessage) -> EmailMessage:
        email = EmailMessage(policy=MIME_POLICY)
        email["Message-ID"] = message.message_id
        email["Date"] = format_datetime(utcnow())
        email["From"] = formataddr((self.smtp.sender_name, self.smtp.sender))
        email["To"] = ", ".join(formataddr((r["name"], r["email"])) for r in message.recipients)
        email["Subject"] = message.subject
        email["Auto-Submitted"] = "auto-generated"
        email.set_content(self._personalise(message.text_body))
        email.add_alternative(self._personalise(message.html_body, html=True), subtype="html")
        for attachment in message.attachments or ():
            maintype, subtype, params = _split_content_type(attachment["content_type"])
            email.add_attachment(
                base64.b64decode(attachment["data"], validate=True),
                maintype=maintype,
                subtype=subtype,
                filename=attachment["filename"],
                params=params,
            )
        return email

    @functools.cached_property
    def _from_header(self) -> str:
        return mime.addresses("From", [(self.smtp.sender_name, self.smtp.sender)])

    def _date_header(self) -> str:
        """'Date: ...' for this second, written once per second (a batch goes out within a few)."""
        second = int(time.time())
        if self._date[0] != second:
            self._date = (second, mime.header("Date", format_datetime(dt.datetime.fromtimestamp(second, dt.UTC))))
        return self._date[1]

    def serialize(self, message: OutboxMessage) -> bytes:
        """The bytes `build()` stands for, written directly (notifications.mime): what is sent."""
        for recipient in message.recipients:
            if not recipient["email"].isascii():
                raise PermanentFailure(f"{recipient['email']!r}: addresses must be ASCII (SMTPUTF8 is not used)")
        attachments = []
        for attachment in message.attachments or ():
            maintype, subtype, params = _split_content_type(attachment["content_type"])
            attachments.append(
                (attachment["filename"], maintype, subtype, params, base64.b64decode(attachment["data"], validate=True))
            )
        return mime.compose(
            headers=[
                mime.header("Message-ID", message.message_id),
                self._date_header(),
                self._from_header,
                mime.addresses("To", [(r["name"], r["email"]) for r in message.recipients]),
                mime.header("Subject", message.subject),
                "Auto-Submitted: auto-generated",
            ],
            text=self._personalise(message.text_body),
            html=self._personalise(message.html_body, html=True),
            attachments=attachments,
        )

    # -------------------------------------------------------------- the database side

    async def _claim(self, limit: int | None = None) -> tuple[list[OutboxMessage], dt.datetime]:
        now = utcnow()
        lease = now + dt.timedelta(seconds=self.retry.lease_seconds)
        due = or_(
            (_TABLE.c.status == MessageStatus.queued.value) & (_TABLE.c.next_attempt_at <= now),
            (_TABLE.c.status == MessageStatus.sending.value) & (_TABLE.c.lease_until < now),
        )
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
        return sorted(claimed, key=lambda message: message.next_attempt_at), lease

    def _values(self, message: OutboxMessage, outcome: _Outcome, now: dt.datetime) -> dict:
        if outcome.status == "sent":
            return dict(status=MessageStatus.sent.value, sent_at=now, lease_until=None, last_error=outcome.error)
        if outcome.status == "release":  # never started: as if it had not been claimed
            return dict(status=MessageStatus.queued.value, lease_until=None, attempts=_TABLE.c.attempts - 1)
        if outcome.status == "failed" or (not outcome.outage and message.attempts >= self.retry.max_attempts):
            return dict(status=MessageStatus.failed.value, lease_until=None, last_error=outcome.error)
        next_at = now + dt.timedelta(seconds=self.retry.delay(message.attempts))
        return dict(
            status=MessageStatus.queued.value, next_attempt_at=next_at, lease_until=None, last_error=outcome.error
        )

    async def _record(self, results: list[tuple[OutboxMessage, _Outcome]], lease: dt.datetime) -> None:
        await self._record_all([(message, outcome, lease) for message, outcome in results])

    async def _record_all(self, results: list[tuple[OutboxMessage, _Outcome, dt.datetime]]) -> None:
        """Write outcomes in one transaction, each write fenced on the lease its claim wrote."""
        now = utcnow()
        sent: dict[dt.datetime, list[uuid.UUID]] = {}
        for message, outcome, lease in results:
            if outcome is SENT:
                sent.setdefault(lease, []).append(message.id)
        async with self.db.transaction() as session:
            postgres = session.bind.dialect.name == "postgresql"
            for lease, ids in sent.items():
                # On PostgreSQL one array parameter: the same SQL whatever the count, so it is
                # prepared once (an IN list is new SQL for every length).
                chosen = (
                    _TABLE.c.id == any_(bindparam("ids", ids, type_=_ID_ARRAY)) if postgres else _TABLE.c.id.in_(ids)
                )
                await session.execute(
                    update(_TABLE).where(chosen, *_fence(lease)).values(**self._values(None, SENT, now))
                )
            for message, outcome, lease in results:
                if outcome is not SENT:
                    await session.execute(
                        update(_TABLE)
                        .where(_TABLE.c.id == message.id, *_fence(lease))
                        .values(**self._values(message, outcome, now))
                    )
        for _message, outcome, _lease in results:
            self.stats[outcome.status] += 1

    # -------------------------------------------------------------- the SMTP side

    async def _send(self, job: _Job, data: bytes) -> _Outcome:
        """Send one message on a pooled connection; a stale reused connection is replaced once."""
        for attempt in (1, 2):
            try:
                connection = await self.pool.acquire()
            except (aiosmtplib.SMTPException, *_NETWORK_ERRORS) as exc:
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
                    return _Outcome(
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
                else:
                    if not data_started:
                        try:
                            await client.rset()
                        except (aiosmtplib.SMTPException, *_NETWORK_ERRORS):
                            self.pool.discard(connection)
                            connection = None
                    if connection is not None:
                        self.pool.release(connection)
                log.warning(
                    "SMTP answered %s for %s (%s)",
                    exc.code,
                    job.message.message_id,
                    "permanent" if permanent else "will retry",
                )
                return _Outcome("failed" if permanent else "retry", f"{exc.code} {exc.message}")
            except (aiosmtplib.SMTPException, *_NETWORK_ERRORS, asyncio.CancelledError) as exc:
                self.pool.discard(connection)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                if reused and not data_started and attempt == 1:
                    continue  # an idle connection the server had closed: nothing was sent
                log.warning("SMTP unavailable for %s: %s (will retry)", job.message.message_id, exc)
                return _Outcome("retry", f"{type(exc).__name__}: {exc}")
            else:
                self.pool.release(connection)
                if refused:
                    return _Outcome(
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
            return await _Stream(self, stop=None, once=True).run()
        finally:
            if not keep_connections:
                await self.pool.close()

    async def run_forever(self, *, interval: float = 2.0, stop: asyncio.Event | None = None) -> None:
        """Send until `stop` is set: batch after batch while full batches are due, else a look every `interval`.

        On stop, the sends in flight finish and messages claimed but not started go back to the queue."""
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                stream = _Stream(self, stop=stop, once=False)
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

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()


_ID_ARRAY = ARRAY(_TABLE.c.id.type)


def _fence(lease: dt.datetime) -> tuple:
    return _TABLE.c.status == MessageStatus.sending.value, _TABLE.c.lease_until == lease


def _split_content_type(content_type: str) -> tuple[str, str, dict[str, str]]:
    """'text/calendar; method=REQUEST; charset=UTF-8' -> ('text', 'calendar', {'method': 'REQUEST', ...})."""
    kind, *parameters = [part.strip() for part in content_type.split(";")]
    maintype, _, subtype = kind.partition("/")
    params = {}
    for parameter in parameters:
        if parameter:
            name, _, value = parameter.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
    if not maintype or not subtype:
        raise PermanentFailure(f"not a content type: {content_type!r}")
    return maintype.lower(), subtype.lower(), params
