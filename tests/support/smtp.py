"""A real SMTP server (aiosmtpd) that records what it receives and can be told to fail."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from service.prefect_server import free_port


@dataclass(frozen=True)
class Received:
    envelope_to: list[str]
    message: EmailMessage

    @functools.cached_property
    def subject(self) -> str:  # parsed once: the header registry's parse is slow, and tests ask often
        return self.message["Subject"] or ""

    @functools.cached_property
    def text(self) -> str:  # decoded once: tests look through hundreds of emails, many times
        return self.message.get_body(preferencelist=("plain",)).get_content()

    @functools.cached_property
    def html(self) -> str:
        return self.message.get_body(preferencelist=("html",)).get_content()


class _Handler:
    def __init__(self, server: RecordingSmtpServer):
        self.server = server

    async def handle_DATA(self, smtp, session, envelope):
        reply = self.server.next_reply()
        if reply:
            return reply
        if self.server.delay:  # a slow server: each message takes this long to accept
            await asyncio.sleep(self.server.delay)
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        with self.server.arrived:
            self.server.received.append(Received(list(envelope.rcpt_tos), message))
            self.server.arrived.notify_all()
        return "250 OK"


class RecordingSmtpServer:
    def __init__(self):
        self.port = free_port()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)  # waiters wake as a message arrives, not on a poll
        self.replies: list[str] = []
        self.delay = 0.0
        self.controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, server_hostname="test-smtp", ready_timeout=10
        )

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def fail_next(self, *replies: str) -> None:
        """Answer the next DATA commands with these replies (e.g. '451 try later')."""
        with self.lock:
            self.replies.extend(replies)

    def next_reply(self) -> str | None:
        with self.lock:
            return self.replies.pop(0) if self.replies else None

    def wait_for(self, predicate, timeout: float = 60.0) -> Received:
        """The first message received (before or after the call) that satisfies the predicate.
        Each message is looked at once: a predicate must not turn true later for a message it
        refused (those of the tests depend on the message, or on links that are only ever used up)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            with self.lock:
                new = self.received[seen:]
            for item in new:
                if predicate(item):
                    return item
            seen += len(new)
            with self.arrived:
                if not self.arrived.wait_for(lambda seen=seen: len(self.received) > seen, deadline - time.monotonic()):
                    raise AssertionError(
                        f"no matching email within {timeout:.0f} s; got {[r.subject for r in self.received]}"
                    )

    def count(self, predicate) -> int:
        with self.lock:
            return sum(1 for item in self.received if predicate(item))
