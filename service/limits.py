"""Request limits, as plain ASGI middlewares that never buffer a request body: the body size
(413) and the failed link attempts per client (429, counted in the database so that every web
process counts the same), with the real client read behind trusted proxies only."""

from __future__ import annotations

import collections
import datetime as dt
import functools
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from approvals.errors import InvalidInput
from service.web import LINK_PREFIX, message_page, query_language, send_page

log = logging.getLogger("kehoach.web")


@dataclass(frozen=True)
class WebLimits:
    """Request limits of the web process.

    max_body_bytes: a request body above this gets 413 (Content-Length checked before
        anything is read; a streamed body is cut off when it passes the limit).
    max_field_bytes: one form field above this (encoded) is refused by the form parser;
        the approval form answers it as "comment too long" (422).
    failure_limit, failure_window: this many invalid-link answers (404 under /a/) to one
        client within this many seconds, and its next link requests get 429 until the
        oldest failure leaves the window. 0 turns the limit off.
    """

    max_body_bytes: int = 8 * 1024 * 1024
    max_field_bytes: int = 64 * 1024
    max_attachment_bytes: int = 5 * 1024 * 1024
    failure_limit: int = 20
    failure_window: float = 60.0

    @classmethod
    def from_settings(cls, settings) -> WebLimits:
        return cls(
            max_body_bytes=settings.max_body_bytes,
            max_field_bytes=settings.max_field_bytes,
            max_attachment_bytes=settings.max_attachment_bytes,
            failure_limit=settings.link_failure_limit,
            failure_window=settings.link_failure_window,
        )


class BodyTooLarge(InvalidInput, HTTPException):
    """Raised from `receive` when a streamed body passes the limit (FastAPI re-raises HTTPExceptions
    as they are); whatever the app answers then, `BodyLimit` sends the 413 page."""

    status = 413
    key = "too_large.title"

    def __init__(self) -> None:
        HTTPException.__init__(self, status_code=413)


class BodyLimit:
    """413 for bodies above the limit, without reading them."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, default_language: str = "vi"):
        self.app = app
        self.max_bytes = max_bytes
        self.default_language = default_language

    async def _refuse(self, scope: Scope, send: Send) -> None:
        language = query_language(scope, self.default_language)
        await send_page(
            scope, send, 413, message_page(language, "too_large.title", "too_large.body"), {"Connection": "close"}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await self._refuse(scope, send)
                return

        received = 0
        too_large = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return  # whatever the app answers to the cut-off body, the client gets the 413 below
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not (too_large and not started):
                raise
        if too_large and not started:
            await self._refuse(scope, send)


def client_key(host: str | None) -> str:
    """The rate-limit key of a client: its IPv4 address, or the /64 of an IPv6 address."""
    if not host:
        return "?"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class FailureWindow:
    """A sliding window of failure times per client, in memory, bounded in size."""

    def __init__(
        self, limit: int, window: float, *, max_clients: int = 50_000, clock: Callable[[], float] = time.monotonic
    ):
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self.clock = clock
        self._failures: dict[str, collections.deque[float]] = {}

    def _live(self, key: str, now: float) -> collections.deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str) -> float | None:
        """Seconds until this client may try again, or None when it is not blocked."""
        if self.limit <= 0:
            return None
        now = self.clock()
        times = self._live(key, now)
        if times is None or len(times) < self.limit:
            return None
        return max(times[0] + self.window - now, 0.001)

    def record(self, key: str) -> None:
        if self.limit <= 0:
            return
        now = self.clock()
        times = self._live(key, now)
        if times is None:
            if len(self._failures) >= self.max_clients:
                self._prune(now)
            times = self._failures[key] = collections.deque(maxlen=self.limit)
        times.append(now)

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._live(key, now)
        while len(self._failures) >= self.max_clients:  # still full: forget the oldest clients
            del self._failures[next(iter(self._failures))]

    def __len__(self) -> int:
        return len(self._failures)


@functools.cache
def _failures_since():
    """A client's failures in the window and the oldest of them (built once: every link request asks)."""
    from sqlalchemy import bindparam, func, select

    from approvals.models import LinkFailure

    return select(func.count(), func.min(LinkFailure.at)).where(
        LinkFailure.client_key == bindparam("key"), LinkFailure.at > bindparam("since")
    )


class SharedFailures:
    """The failure window in the database: every web process counts the same failures (several
    processes behind a proxy give a guesser no more tries than one). The same sliding window as
    `FailureWindow`: a client over `limit` failures in the last `window` seconds waits until the
    oldest of them leaves it."""

    def __init__(self, limit: int, window: float):
        self.limit = limit
        self.window = window

    async def retry_after(self, db, key: str) -> float | None:
        if self.limit <= 0:
            return None
        from approvals.db import utcnow

        now = utcnow()
        since = now - dt.timedelta(seconds=self.window)
        [(count, oldest)] = await db.read_once(_failures_since(), {"key": key, "since": since})
        if count < self.limit:
            return None
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.UTC)
        return max((oldest - since).total_seconds(), 0.001)

    async def record(self, db, key: str) -> None:
        if self.limit <= 0:
            return
        from sqlalchemy import delete

        from approvals.db import utcnow
        from approvals.models import LinkFailure

        now = utcnow()
        async with db.transaction() as session:
            session.add(LinkFailure(client_key=key[:64], at=now))
            # Keep the table small: what has left every window goes (cheap, by the time index).
            await session.execute(
                delete(LinkFailure).where(LinkFailure.at < now - dt.timedelta(seconds=max(self.window, 60) * 10))
            )


def trusted_networks(spec: str) -> list:
    """KEHOACH_TRUSTED_PROXIES: comma-separated addresses or networks (e.g. 10.0.0.0/8, ::1)."""
    networks = []
    for part in (p.strip() for p in spec.split(",")):
        if part:
            networks.append(ipaddress.ip_network(part, strict=False))
    return networks


def real_client(scope: Scope, trusted: list) -> str | None:
    """The client's address: the peer, or, when the peer is a trusted proxy, the last address in
    X-Forwarded-For that is not a trusted proxy (the one the first trusted hop saw). A forged
    header from an untrusted peer is ignored."""
    client = scope.get("client")
    peer = client[0] if client else None

    def is_trusted(host: str | None) -> bool:
        try:
            address = ipaddress.ip_address(host) if host else None
        except ValueError:
            return False
        return address is not None and any(address in network for network in trusted)

    if not trusted or not is_trusted(peer):
        return peer
    forwarded = [value.decode("latin-1") for name, value in scope.get("headers", []) if name == b"x-forwarded-for"]
    hops = [hop.strip() for header in forwarded for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else peer


class LinkFailureLimit:
    """Slows down guessing: repeated invalid-link answers to one client earn it 429s.

    Only invalid-link answers (404 under /a/ and /s/) count; a working link does not. While a
    client is over the limit every link request of its gets 429 before its link is looked at,
    so a 429 says nothing about the token it carried. The client is the real one behind the
    trusted proxies (`KEHOACH_TRUSTED_PROXIES`), and its failures are counted in the database,
    across every web process (in memory when the app has no database yet).
    """

    def __init__(
        self, app: ASGIApp, *, limit: int, window: float, default_language: str = "vi", trusted_proxies: str = ""
    ):
        self.app = app
        self.failures = FailureWindow(limit, window)
        self.shared = SharedFailures(limit, window)
        self.trusted = trusted_networks(trusted_proxies)
        self.default_language = default_language

    def _db(self, scope: Scope):
        state = getattr(getattr(scope.get("app"), "state", None), "kehoach", None)
        return getattr(state, "db", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(LINK_PREFIX):
            await self.app(scope, receive, send)
            return
        key = client_key(real_client(scope, self.trusted))
        db = self._db(scope)
        wait = await self.shared.retry_after(db, key) if db is not None else self.failures.retry_after(key)
        if wait is not None:
            seconds = math.ceil(wait)
            language = query_language(scope, self.default_language)
            page = message_page(language, "too_many.title", "too_many.body", seconds=seconds)
            await send_page(scope, send, 429, page, {"Retry-After": str(seconds)})
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 404:
                if db is not None:
                    await self.shared.record(db, key)
                    blocked = await self.shared.retry_after(db, key) is not None
                else:
                    self.failures.record(key)
                    blocked = self.failures.retry_after(key) is not None
                if blocked:
                    log.warning(
                        "client %s reached %d invalid link requests in %gs: slowed down",
                        key,
                        self.failures.limit,
                        self.failures.window,
                    )
            await send(message)

        await self.app(scope, receive, counting_send)


def web_limits(request) -> WebLimits:
    return getattr(request.app.state, "web_limits", None) or WebLimits()
