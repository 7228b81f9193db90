"""Send queued messages over SMTP (aiosmtplib), retrying what can be retried.

A message is claimed with a lease; a dispatcher that dies leaves the lease to
run out, and another picks the message up again. Several dispatchers may run at
once: on PostgreSQL the claim skips rows another one holds (SKIP LOCKED); on
SQLite every write transaction takes the database lock when it begins.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from html import escape
from email.policy import SMTP as SMTP_POLICY
from email.utils import formataddr, format_datetime

import aiosmtplib
from sqlalchemy import or_, select, update

from approvals.db import Database, utcnow
from notifications.models import MessageStatus, OutboxMessage

log = logging.getLogger("kehoach.dispatcher")

PLACEHOLDER = re.compile(r"\[\[secret:([a-z_]+):([A-Za-z0-9:_-]+)\]\]")
Resolver = Callable[[str], str]


def placeholder(name: str, argument: str) -> str:
    """Text the dispatcher replaces when it sends, so secrets (link tokens) never sit in the outbox."""
    return f"[[secret:{name}:{argument}]]"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    sender_name: str
    local_hostname: str
    username: str | None = None
    password: str | None = None
    tls: str = "none"  # none | starttls | tls
    timeout: float = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 5.0
    max_seconds: float = 3600.0
    max_attempts: int = 12
    lease_seconds: float = 120.0

    def delay(self, attempts: int) -> float:
        """Exponential backoff with full jitter."""
        return random.uniform(0.5, 1.0) * min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1))


class PermanentFailure(Exception):
    pass


class Dispatcher:
    def __init__(
        self,
        db: Database,
        smtp: SmtpConfig,
        *,
        resolvers: dict[str, Resolver] | None = None,
        retry: RetryPolicy = RetryPolicy(),
        batch_size: int = 50,
    ):
        self.db = db
        self.smtp = smtp
        self.resolvers = resolvers or {}
        self.retry = retry
        self.batch_size = batch_size

    def _personalise(self, body: str, *, html: bool = False) -> str:
        def replace(match: re.Match) -> str:
            resolver = self.resolvers.get(match.group(1))
            if resolver is None:
                raise PermanentFailure(f"no resolver for placeholder '{match.group(1)}'")
            value = resolver(match.group(2))
            return escape(value, quote=True) if html else value

        return PLACEHOLDER.sub(replace, body)

    def build(self, message: OutboxMessage) -> EmailMessage:
        email = EmailMessage(policy=SMTP_POLICY)
        email["Message-ID"] = message.message_id
        email["Date"] = format_datetime(utcnow())
        email["From"] = formataddr((self.smtp.sender_name, self.smtp.sender))
        email["To"] = ", ".join(formataddr((r["name"], r["email"])) for r in message.recipients)
        email["Subject"] = message.subject
        email["Auto-Submitted"] = "auto-generated"
        email.set_content(self._personalise(message.text_body))
        email.add_alternative(self._personalise(message.html_body, html=True), subtype="html")
        return email

    async def _claim(self) -> list[OutboxMessage]:
        now = utcnow()
        async with self.db.transaction() as session:
            query = (
                select(OutboxMessage)
                .where(or_(
                    (OutboxMessage.status == MessageStatus.queued.value) & (OutboxMessage.next_attempt_at <= now),
                    (OutboxMessage.status == MessageStatus.sending.value) & (OutboxMessage.lease_until < now),
                ))
                .order_by(OutboxMessage.next_attempt_at)
                .limit(self.batch_size)
            )
            if session.bind.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            messages = list((await session.execute(query)).scalars())
            lease = now + dt.timedelta(seconds=self.retry.lease_seconds)
            for message in messages:
                message.status = MessageStatus.sending.value
                message.lease_until = lease
                message.attempts += 1
        return messages

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.smtp.host, port=self.smtp.port, local_hostname=self.smtp.local_hostname,
            use_tls=self.smtp.tls == "tls", start_tls=True if self.smtp.tls == "starttls" else False,
            timeout=self.smtp.timeout,
        )
        await client.connect()
        if self.smtp.username:
            await client.login(self.smtp.username, self.smtp.password or "")
        return client

    async def _finish(self, message: OutboxMessage, *, error: str | None, permanent: bool = False) -> None:
        now = utcnow()
        if error is None:
            values = dict(status=MessageStatus.sent.value, sent_at=now, lease_until=None, last_error=None)
        elif permanent or message.attempts >= self.retry.max_attempts:
            values = dict(status=MessageStatus.failed.value, lease_until=None, last_error=error)
        else:
            next_at = now + dt.timedelta(seconds=self.retry.delay(message.attempts))
            values = dict(status=MessageStatus.queued.value, next_attempt_at=next_at, lease_until=None, last_error=error)
        async with self.db.transaction() as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message.id, OutboxMessage.status == MessageStatus.sending.value)
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    async def run_once(self) -> int:
        """Claim and send one batch; return how many messages were handled."""
        messages = await self._claim()
        if not messages:
            return 0
        client: aiosmtplib.SMTP | None = None
        for index, message in enumerate(messages):
            try:
                email = self.build(message)
            except Exception as exc:  # the message itself is broken: retrying cannot help
                log.error("cannot build %s: %s", message.message_id, exc)
                await self._finish(message, error=f"cannot build the message: {exc}", permanent=True)
                continue
            if client is None or not client.is_connected:
                try:
                    client = await self._connect()
                except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
                    # Not this message's fault (server down, bad login): every message left waits and retries.
                    log.warning("cannot connect to SMTP %s:%s: %s", self.smtp.host, self.smtp.port, exc)
                    for waiting in messages[index:]:
                        await self._finish(waiting, error=f"connect: {type(exc).__name__}: {exc}")
                    return len(messages)
            try:
                await client.send_message(email)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                permanent = all(500 <= refusal.code < 600 for refusal in exc.recipients)
                await self._finish(message, error="; ".join(f"{r.code} {r.message}" for r in exc.recipients),
                                   permanent=permanent)
            except aiosmtplib.SMTPResponseException as exc:
                permanent = 500 <= exc.code < 600
                log.warning("SMTP answered %s for %s (%s)", exc.code, message.message_id,
                            "permanent" if permanent else "will retry")
                await self._finish(message, error=f"{exc.code} {exc.message}", permanent=permanent)
                if not permanent:
                    client = await _close(client)
            except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
                log.warning("SMTP unavailable for %s: %s (will retry)", message.message_id, exc)
                await self._finish(message, error=f"{type(exc).__name__}: {exc}")
                client = await _close(client)
            else:
                await self._finish(message, error=None)
        await _close(client)
        return len(messages)

    async def run_forever(self, *, interval: float = 2.0, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                handled = await self.run_once()
            except Exception:  # the loop must outlive a database hiccup
                log.exception("dispatch round failed")
                handled = 0
            if handled == 0:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                except asyncio.TimeoutError:
                    pass


async def _close(client: aiosmtplib.SMTP | None) -> None:
    if client is not None and client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
            client.close()
    return None
