"""SMTP connections for the dispatcher: the server's settings and a small pool of
reused aiosmtplib connections (one EHLO per connection, `local_hostname` set so that
no DNS lookup happens per connection)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiosmtplib

from approvals.errors import KehoachError, Unavailable

log = logging.getLogger("kehoach.dispatcher")

NETWORK_ERRORS = (
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPTimeoutError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
    TimeoutError,
)


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
    ca_file: str | None = None  # a CA bundle to trust for tls/starttls (a private relay's CA)
    validate_certs: bool = True


class SmtpUnavailable(Unavailable):
    """Connecting to the SMTP server failed: nothing was sent."""


# ---------------------------------------------------------------------------- connections


@dataclass(eq=False)
class _Connection:
    client: aiosmtplib.SMTP
    last_used: float
    uses: int = 0


class SmtpPool:
    """At most `size` open SMTP connections, each reused for message after message.

    A connection that went wrong is closed, not returned; an idle one older than
    `max_idle_seconds`, or one that has carried `max_messages`, is replaced.
    """

    def __init__(self, config: SmtpConfig, size: int = 4, *, max_idle_seconds: float = 30.0, max_messages: int = 1000):
        if size < 1:
            raise KehoachError("the SMTP pool needs at least one connection")
        self.config = config
        self.size = size
        self.max_idle_seconds = max_idle_seconds
        self.max_messages = max_messages
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(size)
        self.opened = 0  # connections opened so far (for tests and the bench)

    async def acquire(self) -> _Connection:
        await self._slots.acquire()
        try:
            while self._idle:
                connection = self._idle.pop()
                if (
                    connection.client.is_connected
                    and connection.uses < self.max_messages
                    and time.monotonic() - connection.last_used < self.max_idle_seconds
                ):
                    return connection
                await _quit(connection.client)
            return _Connection(await self._open(), last_used=time.monotonic())
        except BaseException:
            self._slots.release()
            raise

    def release(self, connection: _Connection) -> None:
        """Give a healthy connection back for the next message."""
        connection.last_used = time.monotonic()
        if connection.client.is_connected:
            self._idle.append(connection)
        self._slots.release()

    def discard(self, connection: _Connection) -> None:
        """A connection in an unknown state: close it without a word."""
        connection.client.close()
        self._slots.release()

    async def prune(self) -> None:
        """Close connections left idle too long (servers drop them anyway)."""
        now = time.monotonic()
        keep = []
        for connection in self._idle:
            if now - connection.last_used < self.max_idle_seconds and connection.client.is_connected:
                keep.append(connection)
            else:
                await _quit(connection.client)
        self._idle = keep

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await _quit(connection.client)

    async def _open(self) -> aiosmtplib.SMTP:
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            local_hostname=config.local_hostname,
            use_tls=config.tls == "tls",
            start_tls=config.tls == "starttls",
            validate_certs=config.validate_certs,
            cert_bundle=config.ca_file,
            timeout=config.timeout,
        )
        try:
            await client.connect()
            if config.username:
                await client.login(config.username, config.password or "")
        except BaseException:
            client.close()
            raise
        self.opened += 1
        return client


async def _quit(client: aiosmtplib.SMTP) -> None:
    if client.is_connected:
        try:
            await client.quit()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            client.close()


# ---------------------------------------------------------------------------- a stream of batches
