"""The IMAP reader: takes replies from a mailbox, hands each to the handler, then files it.

One pass over the folder (INBOX) looks at every message's UID and flags, in UID order. For each
unseen message it **claims** it, fetches it (BODY.PEEK[]: the fetch changes no flag), hands it
to the handler, and once the handler returned moves it to the done folder (UID MOVE, or UID
COPY + \\Deleted + EXPUNGE where the server has no MOVE). A handler that raises (or runs past
`inbound_handle_timeout`) has its message made unseen again: it stays in the folder and is
handed over again on the next pass. Between passes the reader IDLEs where the server offers it
(renewed every `imap_idle_seconds`, under the 29 minutes after which a server may drop it),
else it looks every `imap_poll_interval` (and that soon again after a pass where a handler
failed). A connection that fails, a server that is down, slow or never greets: every step has a
timeout, and the reader reconnects with back-off.

**The claim, and two readers on one mailbox.** RFC 3501 does not let a client know whether its
`STORE +FLAGS (\\Seen)` changed anything: the FETCH it answers shows the flags after, the same to
both of two readers racing. CONDSTORE (RFC 7162) is meant to: `UID STORE n (UNCHANGEDSINCE m)`
stores only if the message's mod-sequence is still the `m` this reader saw, and otherwise answers
`[MODIFIED n]`. So the claim is that conditional store, and a reader hands over only the messages
it claimed. It narrows the race; it does not close it. Measured on Debian's Dovecot 2.3 (maildir),
two readers whose `UID STORE 7 (UNCHANGEDSINCE 8)` arrive together are both answered OK (both
with `MODSEQ (26)`), and both then fetch the body: about one run in 40 of
`tests/service/test_inbound_imap.py`'s two-reader test hands one of 12 messages over twice. No
IMAP command is atomic across sessions here (a MOVE is a copy then an expunge), so **the handler's
deduplication on Message-ID is what makes a reply count once**, and the reader promises that each
message is handed over *at least* once and filed. Its part: a message another reader has already
filed is not an error (its MOVE answers NO [EXPUNGEISSUED]): it is counted as `filed_elsewhere`;
the done folder may, in that race, keep two copies of one reply. On a server without CONDSTORE the
claim is a plain STORE. No claim is trusted forever: a reader that claimed a message and then
stopped (its process killed, its connection dropped before the move) leaves it seen in the folder,
and a message seen in the folder and unchanged (the same mod-sequence, where there is one) for
`imap_claim_seconds`, longer than a handler may take, is made unseen again by whichever reader
notices, fenced on that mod-sequence, and is handed over anew (the handler's dedupe again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from service.inbound import Handler, message_id_of, reply_recipient
from service.inbound.imap_client import ImapConnection, ImapUnavailable, connect

log = logging.getLogger("kehoach.inbound.imap")
SEEN, DELETED = "\\Seen", "\\Deleted"


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    tls: str  # "tls", "starttls" or "none"
    user: str
    password: str
    folder: str = "INBOX"
    done_folder: str = "Đã xử lý"
    timeout: float = 30.0
    poll_interval: float = 60.0
    idle_seconds: float = 20 * 60.0
    claim_seconds: float = 600.0
    handle_timeout: float = 120.0
    max_bytes: int = 10 * 1024 * 1024
    reply_local_part: str = "duyet"
    reply_domain: str = ""
    ca_file: str | None = None  # the CA the server's certificate is verified against (else the system's)
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    alert_after: float = 900.0  # seconds unreachable before `on_outage` is called (once per outage)


Outage = Callable[[str], Awaitable[None]]
"""Told, once per outage, that the mailbox has been unreachable for `alert_after` seconds: `why`."""


class ImapReader:
    def __init__(self, config: ImapConfig, handle: Handler, on_outage: Outage | None = None):
        self.config = config
        self.handle = handle
        self.on_outage = on_outage
        self._down_since: float | None = None  # monotonic time of the first failure of this outage
        self._told = False
        self.stats = dict.fromkeys(
            ("handled", "failed", "too_large", "released", "connects", "passes", "filed_elsewhere"), 0
        )  # filed_elsewhere: handed over here, but another reader had filed it first
        self._seen_since: dict[tuple[int, int | None], float] = {}  # (UID, mod-sequence) seen in the folder since

    async def run(self, stop: asyncio.Event) -> None:
        """Read until `stop` is set; never raises for the server's sake."""
        failures = 0
        while not stop.is_set():
            try:
                imap = await self._open()
            except ImapUnavailable as exc:
                failures += 1
                delay = self._backoff(failures)
                log.warning("IMAP %s:%s unavailable (%s): trying again in %.0f s", *self._where(), exc, delay)
                await self._still_down(str(exc))
                await _wait(stop, delay)
                continue
            failures, self._down_since, self._told = 0, None, False
            try:
                await self._serve(imap, stop)
            except ImapUnavailable as exc:
                failures += 1
                delay = self._backoff(failures)
                log.warning("IMAP connection lost (%s): reconnecting in %.0f s", exc, delay)
                imap.close()
                await _wait(stop, delay)
            else:
                await imap.logout()

    async def _still_down(self, why: str) -> None:
        """Once the mailbox has been unreachable for `alert_after`, tell `on_outage` (once per
        outage; its failure is logged, never raised: the reader keeps trying)."""
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        if self._told or self.on_outage is None or now - self._down_since < self.config.alert_after:
            return
        self._told = True
        try:
            await self.on_outage(f"{self.config.host}:{self.config.port}: {why}")
        except Exception:
            log.exception("could not tell the coordinators that the mailbox is unreachable")

    def _where(self) -> tuple[str, int]:
        return self.config.host, self.config.port

    def _backoff(self, failures: int) -> float:
        growth: float = 2.0 ** min(failures - 1, 16)
        return random.uniform(0.5, 1.0) * min(self.config.backoff_max, self.config.backoff_base * growth)

    async def _open(self) -> ImapConnection:
        config = self.config
        imap = await connect(config.host, config.port, tls=config.tls, timeout=config.timeout, ca_file=config.ca_file)
        try:
            await imap.login(config.user, config.password)
            await imap.ensure_folder(config.done_folder)
            await imap.select(config.folder)
        except BaseException:
            imap.close()
            raise
        self.stats["connects"] += 1
        log.info(
            "reading %s on %s:%s (%s), filing into %r",
            config.folder,
            config.host,
            config.port,
            "IDLE" if imap.offers("IDLE") else f"a look every {config.poll_interval:g} s",
            config.done_folder,
        )
        return imap

    async def _serve(self, imap: ImapConnection, stop: asyncio.Event) -> None:
        while not stop.is_set():
            before = self.stats["failed"] + self.stats["released"]
            imap.arrived = False
            await self.read_once(imap, stop)
            if stop.is_set():
                return
            if imap.arrived:
                continue  # a message announced during the pass: the server will not announce it again
            if imap.offers("IDLE"):
                # A reply that failed, or a claim released, is tried after the poll interval, not at the
                # next arrival; a claim being watched is looked at again once it may have lapsed.
                retry = self.stats["failed"] + self.stats["released"] > before
                seconds = self.config.poll_interval if retry else self.config.idle_seconds
                if self._seen_since:
                    seconds = min(seconds, self.config.claim_seconds)
                await imap.idle(seconds, stop)
            else:
                await _wait(stop, self.config.poll_interval)
                await imap.command("NOOP")  # new messages show up in the folder's state

    async def read_once(self, imap: ImapConnection, stop: asyncio.Event | None = None) -> int:
        """One pass over the folder; how many messages were handed over and filed."""
        handled = 0
        now = time.monotonic()
        present = set()
        for uid, flags, modseq in await imap.flags():
            if stop is not None and stop.is_set():
                break
            if DELETED in flags:
                continue
            if SEEN not in flags:
                if await imap.store(uid, "+", SEEN, unchanged_since=modseq):
                    handled += await self._handle(imap, uid)
                continue
            key = (uid, modseq)
            present.add(key)
            since = self._seen_since.setdefault(key, now)
            if now - since >= self.config.claim_seconds and await imap.store(uid, "-", SEEN, unchanged_since=modseq):
                self.stats["released"] += 1
                log.warning("uid %s was claimed and left in %s: made unseen, handled anew", uid, self.config.folder)
        self._seen_since = {key: at for key, at in self._seen_since.items() if key in present}
        self.stats["passes"] += 1
        return handled

    async def _handle(self, imap: ImapConnection, uid: int) -> int:
        raw = await imap.body(uid)
        if raw is None:
            return 0  # expunged meanwhile
        message_id = message_id_of(raw)
        if len(raw) > self.config.max_bytes:
            await self._file(imap, uid, message_id)
            self.stats["too_large"] += 1
            log.warning("%s (uid %s): %d bytes, over the limit: filed unapplied", message_id, uid, len(raw))
            return 0
        recipient = reply_recipient(raw, local_part=self.config.reply_local_part, domain=self.config.reply_domain)
        try:
            await asyncio.wait_for(self.handle(raw, recipient), self.config.handle_timeout)
        except Exception as exc:  # the handler's fault or a timeout: offered again on the next pass
            self.stats["failed"] += 1
            log.error(
                "%s (uid %s): not handled (%s: %s): left unseen, tried again later",
                message_id,
                uid,
                type(exc).__name__,
                exc,
                exc_info=not isinstance(exc, TimeoutError),
            )
            await imap.store(uid, "-", SEEN)
            return 0
        self.stats["handled"] += 1
        if await self._file(imap, uid, message_id):
            log.info("%s (uid %s): handled, filed into %r", message_id, uid, self.config.done_folder)
        return 1

    async def _file(self, imap: ImapConnection, uid: int, message_id: str) -> bool:
        if await imap.move(uid, self.config.done_folder):
            return True
        self.stats["filed_elsewhere"] += 1
        log.info("%s (uid %s): another reader had filed it already", message_id, uid)
        return False


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
