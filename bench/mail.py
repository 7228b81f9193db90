"""How fast the dispatcher sends, next to two raw aiosmtplib senders, in one run.

    python bench/mail.py [--messages 2000] [--postgres URL] [--pool 4] [--per-transaction 1]

An aiosmtpd sink runs in a child process (so it does not share the GIL with the senders)
on 127.0.0.1 and counts what it accepts by Message-ID. Then, one after the other:

  naive       aiosmtplib, one connection per message (connect, EHLO, MAIL, RCPT, DATA, QUIT),
              messages one at a time
  pooled      aiosmtplib, `--pool` connections opened once and reused, all sending at once
  dispatcher  the real thing, end to end: render each email (Jinja2, vi), enqueue it in its
              own transaction (or `--per-transaction` per transaction), and a Dispatcher
              (`run_forever`, default settings, pool `--pool`) sending and recording
              each result, until every message is recorded as sent; once in one process,
              once with the producer in a process of its own (50 per transaction), as in
              production where flows and the web service queue and `kehoach dispatch` sends
  + dispatch only: the same Dispatcher on an outbox filled beforehand (not timed: render and
              enqueue), to show where the time goes

The raw senders send the same bytes the dispatcher would (one rendered approval email,
its Message-ID changed per message), built before their clock starts. The database is a
SQLite file in a temporary folder, or a fresh schema in `--postgres URL` (dropped after).
Each sender is checked: every message accepted once. The rates are printed; nothing is
asserted about time (the numbers depend on the machine and on what else runs on it).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
SENDER = "kehoach@lang-son.example"
RECIPIENT = "hanh.nt@lang-son.example"
DOMAIN = "kehoach.bench"
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


# ------------------------------------------------------------------------ the sink (child process)


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


# ------------------------------------------------------------------------ the three senders


def email_context(index: int) -> dict:
    from notifications.dispatcher import placeholder

    return dict(
        title="Giám đốc", name="Nông Thị Hạnh", cycle="Năm 2027",
        stage=f"{index % 9 + 1}. Phê duyệt kế hoạch truyền thông năm", agency="Sở Khoa học và Công nghệ tỉnh Lạng Sơn",
        due="17:00 ngày 29/11/2026 (giờ Việt Nam)", summary="Kế hoạch truyền thông về phát triển bền vững.",
        link=placeholder("approval_link", f"{uuid.uuid4()}:1"),
    )


def smtp_config(port: int):
    from notifications.dispatcher import SmtpConfig

    return SmtpConfig(host=HOST, port=port, sender=SENDER, sender_name="Hệ thống kehoach",
                      local_hostname=DOMAIN, timeout=30)


def resolvers() -> dict:
    return {"approval_link": lambda argument: f"https://kehoach.example/a/{argument.replace(':', '_')}"}


def raw_messages(count: int, port: int) -> list[bytes]:
    """The dispatcher's own bytes for one rendered email, with a fresh Message-ID each."""
    from notifications.dispatcher import Dispatcher
    from notifications.models import OutboxMessage
    from notifications.render import Renderer

    email = Renderer().render("approval_request", "vi", **email_context(0))
    dispatcher = Dispatcher(None, smtp_config(port), resolvers=resolvers())
    template = dispatcher.serialize(OutboxMessage(
        message_id="<MESSAGE-ID>", recipients=[{"name": "Nông Thị Hạnh", "email": RECIPIENT}],
        subject=email.subject, text_body=email.text, html_body=email.html, attachments=[]))
    return [template.replace(b"<MESSAGE-ID>", f"<{uuid.uuid4()}@{DOMAIN}>".encode()) for _ in range(count)]


async def naive(messages: list[bytes], port: int) -> None:
    import aiosmtplib

    for data in messages:
        client = aiosmtplib.SMTP(hostname=HOST, port=port, local_hostname=DOMAIN, start_tls=False, timeout=30)
        await client.connect()
        await client.sendmail(SENDER, [RECIPIENT], data)
        await client.quit()


async def pooled(messages: list[bytes], port: int, size: int) -> None:
    import aiosmtplib

    pending = list(reversed(messages))

    async def connection() -> None:
        client = aiosmtplib.SMTP(hostname=HOST, port=port, local_hostname=DOMAIN, start_tls=False, timeout=30)
        await client.connect()
        while pending:
            await client.sendmail(SENDER, [RECIPIENT], pending.pop())
        await client.quit()

    await asyncio.gather(*(connection() for _ in range(size)))


async def produce(db, count: int, per_transaction: int, offset: int = 0) -> None:
    """Render and enqueue, as a flow or the web service does."""
    from notifications.outbox import Outgoing, Recipient, enqueue_many
    from notifications.render import Renderer

    renderer = Renderer()
    for start in range(0, count, per_transaction):
        async with db.transaction() as session:  # as a fan-out queues its emails: one statement per transaction
            await enqueue_many(session, [
                Outgoing(f"bench:{offset + index}", "approval_request", [Recipient("Nông Thị Hạnh", RECIPIENT)],
                         renderer.render("approval_request", "vi", **email_context(index)))
                for index in range(start, min(count, start + per_transaction))], domain=DOMAIN)
        if start % 200 == 0:
            await asyncio.sleep(0)  # let the dispatcher in


def _produce_main(url: str, count: int, per_transaction: int, offset: int, ready, go) -> None:
    """The producer in a process of its own, as in production (the flow worker, the web service)."""
    from approvals.db import Database as Db
    from notifications.outbox import enqueue_many  # noqa: F401 - imported before the clock starts
    from notifications.render import Renderer  # noqa: F401

    async def main() -> None:
        db = Db(url)
        try:
            ready.set()
            go.wait()
            await produce(db, count, per_transaction, offset=offset)
        finally:
            await db.dispose()

    asyncio.run(main())


class ProducerProcess:
    """Started (and its imports done) before the clock starts; `go()` lets it produce."""

    def __init__(self, url: str, count: int, per_transaction: int, offset: int):
        context = multiprocessing.get_context("spawn")
        self.ready, self.go_event = context.Event(), context.Event()
        self.process = context.Process(target=_produce_main,
                                       args=(url, count, per_transaction, offset, self.ready, self.go_event))
        self.process.start()
        if not self.ready.wait(60):
            raise SystemExit("the producer process did not start")

    async def go(self) -> None:
        self.go_event.set()
        await asyncio.to_thread(self.process.join)
        if self.process.exitcode != 0:
            raise SystemExit(f"the producer process failed (exit code {self.process.exitcode})")


async def unsent(db) -> int:
    from sqlalchemy import func, select

    from notifications.models import MessageStatus, OutboxMessage

    async with db.transaction() as session:
        return (await session.execute(select(func.count()).where(
            OutboxMessage.status != MessageStatus.sent.value))).scalar()


async def dispatch(db, port: int, pool: int, *, until, producer=None):
    from notifications.dispatcher import Dispatcher

    dispatcher = Dispatcher(db, smtp_config(port), resolvers=resolvers(), pool_size=pool)
    stop = asyncio.Event()

    async def watch() -> None:
        try:
            if producer is not None:
                await producer
            while not await until():
                await asyncio.sleep(0.1)
        finally:
            stop.set()

    await asyncio.gather(watch(), dispatcher.run_forever(interval=0.25, stop=stop))
    return dispatcher


# ------------------------------------------------------------------------ the run


class Database:
    """A migrated, empty database for one run: a SQLite file or a PostgreSQL schema."""

    def __init__(self, postgres: str | None, folder: Path):
        from approvals.migrate import upgrade

        self.postgres, self.schema = postgres, None
        if postgres:
            import psycopg
            from sqlalchemy.engine import make_url

            self.schema = f"kh_bench_{uuid.uuid4().hex[:10]}"
            self.conninfo = make_url(postgres).set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(self.conninfo, autocommit=True) as connection:
                connection.execute(f'CREATE SCHEMA "{self.schema}"')
            self.url = make_url(postgres).update_query_dict(
                {"options": f"-csearch_path={self.schema}"}).render_as_string(hide_password=False)
        else:
            self.url = f"sqlite:///{folder / 'bench.db'}"
        upgrade(self.url)

    def drop(self) -> None:
        if self.schema:
            import psycopg

            with psycopg.connect(self.conninfo, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA "{self.schema}" CASCADE')


def check(sink: Sink, expected: int, what: str) -> None:
    total, distinct, doubled = sink.stats()
    if (total, distinct, doubled) != (expected, expected, 0):
        raise SystemExit(f"{what}: the sink accepted {total} messages, {distinct} distinct, {doubled} twice; "
                         f"expected {expected} once each")
    sink.reset()


async def run(args) -> None:
    from sqlalchemy import delete

    from approvals.db import Database as Db
    from notifications.models import OutboxMessage

    count, pool = args.messages, args.pool
    sink = Sink()
    sink.start()
    folder = Path(tempfile.mkdtemp(prefix="kehoach-bench-"))
    database = Database(args.postgres, folder)
    db = Db(database.url)
    rows: list[tuple[str, float]] = []
    try:
        messages = raw_messages(2 * count, sink.port)
        print(f"{count} messages of {len(messages[0])} bytes to an aiosmtpd sink on {HOST}:{sink.port} "
              f"(own process); database: {'PostgreSQL' if args.postgres else 'SQLite file'}")

        started = time.perf_counter()
        await naive(messages[:count], sink.port)
        rows.append(("naive: a new connection per message, one at a time", count / (time.perf_counter() - started)))
        check(sink, count, "naive")

        started = time.perf_counter()
        await pooled(messages[count:], sink.port, pool)
        rows.append((f"pooled: {pool} reused connections, all at once", count / (time.perf_counter() - started)))
        check(sink, count, "pooled")

        async def all_sent() -> bool:  # asks the sink first: a database poll would compete for its lock
            return (await asyncio.to_thread(sink.stats))[1] >= count and await unsent(db) == 0

        offset = 0
        for per_transaction in args.per_transaction:
            async with db.transaction() as session:
                await session.execute(delete(OutboxMessage))
            started = time.perf_counter()
            producer = asyncio.ensure_future(produce(db, count, per_transaction, offset=offset))
            await dispatch(db, sink.port, pool, until=all_sent, producer=producer)
            rows.append((f"dispatcher, end to end, {per_transaction} per transaction",
                         count / (time.perf_counter() - started)))
            check(sink, count, f"dispatcher ({per_transaction} per transaction)")
            offset += count

        async with db.transaction() as session:
            await session.execute(delete(OutboxMessage))
        elsewhere = ProducerProcess(database.url, count, 50, offset)
        started = time.perf_counter()
        producer = asyncio.ensure_future(elsewhere.go())
        await dispatch(db, sink.port, pool, until=all_sent, producer=producer)
        rows.append(("dispatcher, end to end, producer in its own process", count / (time.perf_counter() - started)))
        check(sink, count, "dispatcher (producer in its own process)")
        offset += count

        async with db.transaction() as session:
            await session.execute(delete(OutboxMessage))
        await produce(db, count, 500, offset=offset)
        started = time.perf_counter()
        await dispatch(db, sink.port, pool, until=all_sent)
        rows.append(("dispatcher, sending only (outbox filled before)", count / (time.perf_counter() - started)))
        check(sink, count, "dispatcher (sending only)")
    finally:
        await db.dispose()
        database.drop()
        shutil.rmtree(folder, ignore_errors=True)
        sink.stop()

    naive_rate, pooled_rate = rows[0][1], rows[1][1]
    print()
    print(f"  {'':52} {'messages/s':>10} {'x pooled':>9} {'x naive':>8}")
    for name, rate in rows:
        print(f"  {name:52} {rate:10.0f} {rate / pooled_rate:9.2f} {rate / naive_rate:8.2f}")
    print()
    print("  targets: dispatcher >= 0.8 x pooled and >= 3.5 x naive. 'end to end' = render + enqueue")
    print("  (N emails per transaction) + claim + send + record, in one process; 'sending only' = claim +")
    print("  send + record. Every sender's messages were each accepted exactly once by the sink.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--postgres", metavar="URL", help="e.g. postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--pool", type=int, default=4, help="SMTP connections (pooled sender and dispatcher)")
    parser.add_argument("--per-transaction", type=lambda v: [int(x) for x in v.split(",")], default=[1, 50],
                        help="emails enqueued per transaction, one end-to-end run each (default 1,50)")
    args = parser.parse_args(argv)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
