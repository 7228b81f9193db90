"""A real SMTP server (aiosmtpd, on 127.0.0.1, in a thread of its own) that can be told to fail.

Faults, each scripted for the next N times a stage is reached:
- `greeting`: answer the connection with this reply (e.g. "421 ...") and close it;
- `mail`, `rcpt`: answer MAIL FROM / RCPT TO with this reply (e.g. "451 ...", "550 ...");
- `data`: answer the end of the message with this reply instead of accepting it;
- `DROP` at `mail` or `rcpt`: close the connection instead of answering;
- `DROP` at `data`: accept and record the message, then close the connection without
  answering (the client cannot know the message arrived);
- `HANG` at `data`: never answer (until the server stops).
Also `down()` / `up()`: stop listening (connections are refused) and close every open
connection, then listen again on the same port. `down()` is a clean stop: a message is
kept only if its acceptance is answered (keeping one unanswered is the `DROP` fault). It
records every accepted message with its Message-ID, the EHLO name, TLS and login of the session, and counts connections.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
import time
import warnings
from collections import Counter, deque
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, AuthResult

from service.prefect_server import free_port

DROP = "<drop the connection>"
HANG = "<never answer>"
STAGES = ("greeting", "mail", "rcpt", "data")
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Accepted:
    envelope_from: str
    envelope_to: list[str]
    raw: bytes
    message_id: str | None
    helo: str | None
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=policy.default)


class _Refuse(asyncio.Protocol):
    """Answers the greeting with an error and hangs up."""

    def __init__(self, reply: str):
        self.reply = reply

    def connection_made(self, transport):
        transport.write(self.reply.encode("ascii") + b"\r\n")
        transport.close()


class _Session(SMTP):
    def __init__(self, server: FaultySmtpServer, **kwargs):
        super().__init__(_Handler(server), **kwargs)
        self.server = server

    def connection_made(self, transport):
        first = self.transport is None
        super().connection_made(transport)
        if first:
            with self.server.lock:
                self.server.open_sessions.add(self)
                self.server.max_concurrent = max(self.server.max_concurrent, len(self.server.open_sessions))

    def connection_lost(self, error):
        with self.server.lock:
            self.server.open_sessions.discard(self)
        super().connection_lost(error)

    def hang_up(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Handler:
    def __init__(self, server: FaultySmtpServer):
        self.server = server

    async def _fault(self, smtp: _Session, stage: str) -> str | None:
        reply = self.server.next_fault(stage)
        if reply == DROP:
            smtp.hang_up()
            return "421 closing"  # never reaches the client
        if reply == HANG:
            await asyncio.sleep(3600)
        return reply

    async def handle_MAIL(self, smtp, session, envelope, address, mail_options):
        reply = await self._fault(smtp, "mail")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, smtp, session, envelope, address, rcpt_options):
        reply = await self._fault(smtp, "rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp, session, envelope):
        reply = self.server.next_fault("data")
        if reply == HANG:
            await asyncio.sleep(3600)
        if reply and reply != DROP:
            return reply
        if smtp.transport is None or smtp.transport.is_closing():
            # down() closed this connection after the message came in: a clean stop keeps no
            # message it cannot acknowledge (keeping it unanswered is the DROP fault).
            return "421 4.3.2 shutting down"
        raw = envelope.original_content or envelope.content
        found = _MESSAGE_ID.search(raw.split(b"\r\n\r\n", 1)[0])
        accepted = Accepted(
            envelope_from=envelope.mail_from,
            envelope_to=list(envelope.rcpt_tos),
            raw=raw,
            message_id=found.group(1).decode("ascii") if found else None,
            helo=session.host_name,
            tls=session.ssl is not None or smtp.transport.get_extra_info("ssl_object") is not None,
            login=session.auth_data if session.authenticated else None,
        )
        with self.server.lock:
            self.server.accepted.append(accepted)
            self.server.message_ids[accepted.message_id] += 1
        if reply == DROP:  # it arrived, but the client never hears so
            smtp.hang_up()
        return "250 OK"


class FaultySmtpServer:
    def __init__(
        self,
        *,
        hostname: str = "fault-smtp",
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        require_starttls: bool = False,
        logins: dict[str, str] | None = None,
    ):
        self.host = "127.0.0.1"
        self.port = free_port()
        self.hostname = hostname
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.require_starttls = require_starttls
        self.logins = logins
        self.lock = threading.Lock()
        self.accepted: list[Accepted] = []
        self.message_ids: Counter[str] = Counter()
        self.connections = 0
        self.open_sessions: set[_Session] = set()
        self.max_concurrent = 0
        self._faults: dict[str, deque[str]] = {stage: deque() for stage in STAGES}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faulty-smtp", daemon=True)
        self._listener: asyncio.AbstractServer | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread.start()
        self.up()

    def stop(self) -> None:
        self.down()
        for task in asyncio.all_tasks(self._loop):
            self._loop.call_soon_threadsafe(task.cancel)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def up(self) -> None:
        """Listen (again) on the same port."""
        self._call(self._listen())

    def down(self) -> None:
        """Refuse connections, and close every open one (after what was already answered)."""
        self._call(self._close())

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    async def _listen(self) -> None:
        if self._listener is None:
            self._listener = await self._loop.create_server(
                self._factory,
                self.host,
                self.port,
                reuse_address=True,
                ssl=self.tls_context if self.implicit_tls else None,
            )

    async def _close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self.lock:
            sessions = list(self.open_sessions)
        for session in sessions:
            session.hang_up()

    def _call(self, coroutine) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def _factory(self) -> asyncio.Protocol:
        with self.lock:
            self.connections += 1
        greeting = self.next_fault("greeting")
        if greeting:
            return _Refuse(greeting)
        with warnings.catch_warnings():  # implicit TLS: aiosmtpd cannot tell, and warns about AUTH without TLS
            warnings.simplefilter("ignore", UserWarning)
            return self._session()

    def _session(self) -> _Session:
        return _Session(
            self,
            hostname=self.hostname,
            tls_context=None if self.implicit_tls else self.tls_context,
            require_starttls=self.require_starttls,
            auth_required=self.logins is not None,
            authenticator=self._authenticate if self.logins is not None else None,
            auth_require_tls=self.tls_context is not None and not self.implicit_tls,  # aiosmtpd sees STARTTLS only
            timeout=60,
        )

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        login = auth_data.login.decode()
        return AuthResult(success=self.logins.get(login) == auth_data.password.decode(), handled=False, auth_data=login)

    # ------------------------------------------------------------ faults and records

    def fail_next(self, stage: str, *replies: str) -> None:
        assert stage in STAGES, stage
        with self.lock:
            self._faults[stage].extend(replies)

    def next_fault(self, stage: str) -> str | None:
        with self.lock:
            queue = self._faults[stage]
            return queue.popleft() if queue else None

    def faults_left(self) -> dict[str, int]:
        with self.lock:
            return {stage: len(queue) for stage, queue in self._faults.items() if queue}

    def reset(self) -> None:
        with self.lock:
            for queue in self._faults.values():
                queue.clear()
            self.accepted.clear()
            self.message_ids.clear()
            self.connections = 0
            self.max_concurrent = len(self.open_sessions)

    def count(self, message_id: str) -> int:
        with self.lock:
            return self.message_ids[message_id]

    def received(self, message_id: str) -> list[Accepted]:
        with self.lock:
            return [item for item in self.accepted if item.message_id == message_id]

    def wait_for_count(self, message_ids: set[str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(self.message_ids[m] for m in message_ids):
                    return
            time.sleep(0.05)
        raise AssertionError(f"{sum(1 for m in message_ids if not self.count(m))} message(s) never arrived")
