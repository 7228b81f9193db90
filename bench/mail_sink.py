"""bench/mail.py's SMTP sink: an aiosmtpd server in a child process of its own (so that it does not
share the GIL with the senders it measures), counting what it accepts by Message-ID."""

from __future__ import annotations

import asyncio
import multiprocessing
import re
from collections import Counter

from bench.common import HOST

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def _sink_main(port: int, control) -> None:
    from aiosmtpd.smtp import SMTP

    counts: Counter[bytes] = Counter()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            found = _MESSAGE_ID.search(envelope.content.split(b"\r\n\r\n", 1)[0])
            counts[found.group(1) if found else b""] += 1
            return "250 OK"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        handler = Handler()
        server = await loop.create_server(lambda: SMTP(handler, hostname="bench-sink", timeout=60), HOST, port)
        done = loop.create_future()

        def on_command() -> None:
            command = control.recv()
            if command == "stats":
                control.send((sum(counts.values()), len(counts), sum(1 for c in counts.values() if c > 1)))
            elif command == "reset":
                counts.clear()
                control.send("ok")
            elif command == "stop" and not done.done():
                done.set_result(None)

        loop.add_reader(control.fileno(), on_command)
        control.send("ready")
        await done
        server.close()

    asyncio.run(serve())


class Sink:
    def __init__(self) -> None:
        from service.prefect_server import free_port

        self.port = free_port()
        context = multiprocessing.get_context("spawn")
        self.control, child = context.Pipe()
        self.process = context.Process(target=_sink_main, args=(self.port, child), daemon=True)

    def start(self) -> None:
        self.process.start()
        if not self.control.poll(30) or self.control.recv() != "ready":
            raise RuntimeError("the SMTP sink did not start")

    def stats(self) -> tuple[int, int, int]:
        """(messages accepted, distinct Message-IDs, Message-IDs seen more than once)"""
        self.control.send("stats")
        return self.control.recv()

    def reset(self) -> None:
        self.control.send("reset")
        self.control.recv()

    def stop(self) -> None:
        self.control.send("stop")
        self.process.join(10)

    def expect(self, expected: int, what: str) -> None:
        """Stop the bench unless the sink accepted `expected` messages, each once; then empty it."""
        total, distinct, doubled = self.stats()
        if (total, distinct, doubled) != (expected, expected, 0):
            raise SystemExit(
                f"{what}: the sink accepted {total} messages, {distinct} distinct, {doubled} twice; "
                f"expected {expected} once each"
            )
        self.reset()
