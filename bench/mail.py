"""How fast the dispatcher sends, next to two raw aiosmtplib senders, in the same run.

    python bench/mail.py [--messages 2000] [--rounds 3] [--postgres URL] [--pool 4] [--per-transaction 50]

An aiosmtpd sink runs in a child process (so it does not share the GIL with the senders)
on 127.0.0.1 and counts what it accepts by Message-ID. Each round runs every row, one
after the other:

  naive       aiosmtplib, one connection per message (connect, EHLO, MAIL, RCPT, DATA, QUIT),
              messages one at a time
  pooled      aiosmtplib, `--pool` connections opened once and reused, all sending at once
  dispatcher, sending only: the real Dispatcher (`run_forever`, default settings, pool `--pool`)
              on an outbox filled before the clock starts: claim, write the MIME bytes, send,
              record each result, until every message is recorded as sent
  dispatcher, end to end: the same, while the emails are rendered (Jinja2, Vietnamese) and
              queued 50 per transaction by a process of its own (as flows and the web
              service do in production), or by the dispatcher's own process and event loop
              (`--per-transaction`, one row per value)

The raw senders send the same bytes the dispatcher would (one rendered approval email,
its Message-ID changed per message), built before their clock starts. The database is a
SQLite file in a temporary folder, or a fresh schema in `--postgres URL` (dropped after).
Each sender is checked: every message accepted once. Ratios are taken against the
baselines of the same round and their median over the rounds is printed, with the CPU
each process used (the sink near 100 % of a core is the limit). Nothing is asserted about
time: on a small shared machine one run differs from the next by up to +-30 %.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import HOST, CpuMeter, Database, median  # noqa: E402
from bench.mail_sink import Sink  # noqa: E402

SENDER = "kehoach@lang-son.example"
RECIPIENT = "hanh.nt@lang-son.example"
DOMAIN = "kehoach.bench"


# ------------------------------------------------------------------------ the three senders


def email_context(index: int) -> dict:
    from notifications.composing import placeholder

    return dict(
        title="Giám đốc",
        name="Nông Thị Hạnh",
        cycle="Năm 2027",
        stage=f"{index % 9 + 1}. Phê duyệt kế hoạch truyền thông năm",
        agency="Sở Khoa học và Công nghệ tỉnh Lạng Sơn",
        due="17:00 ngày 29/11/2026 (giờ Việt Nam)",
        summary="Kế hoạch truyền thông về phát triển bền vững.",
        link=placeholder("approval_link", f"{uuid.uuid4()}:1"),
        problem="",
    )


def smtp_config(port: int):
    from notifications.dispatcher import SmtpConfig

    return SmtpConfig(
        host=HOST, port=port, sender=SENDER, sender_name="Hệ thống kehoach", local_hostname=DOMAIN, timeout=30
    )


def resolvers() -> dict:
    return {"approval_link": lambda argument: f"https://kehoach.example/a/{argument.replace(':', '_')}"}


def raw_messages(count: int, port: int) -> list[bytes]:
    """The dispatcher's own bytes for one rendered email, with a fresh Message-ID each."""
    from notifications.dispatcher import Dispatcher
    from notifications.models import OutboxMessage
    from notifications.render import Renderer

    email = Renderer().render("approval_request", "vi", **email_context(0))
    dispatcher = Dispatcher(None, smtp_config(port), resolvers=resolvers())
    template = dispatcher.serialize(
        OutboxMessage(
            message_id="<MESSAGE-ID>",
            recipients=[{"name": "Nông Thị Hạnh", "email": RECIPIENT}],
            subject=email.subject,
            text_body=email.text,
            html_body=email.html,
            attachments=[],
        )
    )
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
            await enqueue_many(
                session,
                [
                    Outgoing(
                        f"bench:{offset + index}",
                        "approval_request",
                        [Recipient("Nông Thị Hạnh", RECIPIENT)],
                        renderer.render("approval_request", "vi", **email_context(index)),
                    )
                    for index in range(start, min(count, start + per_transaction))
                ],
                domain=DOMAIN,
            )
        if start % 200 == 0:
            await asyncio.sleep(0)  # let the dispatcher in


def _produce_main(url: str, count: int, per_transaction: int, offset: int, ready, go, cpu) -> None:
    """The producer in a process of its own, as in production (the flow worker, the web service)."""
    from approvals.db import Database as Db
    from notifications.outbox import enqueue_many  # noqa: F401 - imported before the clock starts
    from notifications.render import Renderer  # noqa: F401

    async def main() -> None:
        db = Db(url)
        try:
            ready.set()
            go.wait()
            started = time.process_time()
            await produce(db, count, per_transaction, offset=offset)
            cpu.value = time.process_time() - started  # its CPU while producing (not its imports)
        finally:
            await db.dispose()

    asyncio.run(main())


class ProducerProcess:
    """Started (and its imports done) before the clock starts; `go()` lets it produce."""

    def __init__(self, url: str, count: int, per_transaction: int, offset: int):
        context = multiprocessing.get_context("spawn")
        self.ready, self.go_event, self.cpu = context.Event(), context.Event(), context.Value("d", 0.0)
        self.process = context.Process(
            target=_produce_main, args=(url, count, per_transaction, offset, self.ready, self.go_event, self.cpu)
        )
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
        return (
            await session.execute(select(func.count()).where(OutboxMessage.status != MessageStatus.sent.value))
        ).scalar()


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

ROWS = {
    "naive": "naive: a new connection per message, one at a time",
    "pooled": "pooled: {pool} reused connections, all at once",
    "sending": "dispatcher, sending only: claim + write + send + record",
    "elsewhere": "dispatcher, end to end, producer in its own process",
    "inline": "dispatcher, end to end, one process, {n} per transaction",
}


async def one_round(args, sink: Sink, db, database: Database, offset: int) -> list[tuple[str, float, dict]]:
    """Every row once, one after the other; returns (row, messages/s, CPU shares)."""
    from sqlalchemy import delete

    from notifications.models import OutboxMessage

    count, pool = args.messages, args.pool
    meter = CpuMeter(sink=sink.process.pid)
    results = []

    def timed(key: str, started: float, **other_cpu_seconds: float) -> None:
        results.append((key, count / (time.perf_counter() - started), meter.stop(**other_cpu_seconds)))

    messages = raw_messages(2 * count, sink.port)
    meter.start()
    started = time.perf_counter()
    await naive(messages[:count], sink.port)
    timed("naive", started)
    sink.expect(count, "naive")

    meter.start()
    started = time.perf_counter()
    await pooled(messages[count:], sink.port, pool)
    timed("pooled", started)
    sink.expect(count, "pooled")

    async def all_sent() -> bool:  # asks the sink first: a database poll would compete for its lock
        return (await asyncio.to_thread(sink.stats))[1] >= count and await unsent(db) == 0

    async def empty() -> None:
        async with db.transaction() as session:
            await session.execute(delete(OutboxMessage))

    await empty()
    await produce(db, count, 500, offset=offset)
    offset += count
    meter.start()
    started = time.perf_counter()
    await dispatch(db, sink.port, pool, until=all_sent)
    timed("sending", started)
    sink.expect(count, "dispatcher (sending only)")

    await empty()
    elsewhere = ProducerProcess(database.url, count, 50, offset)
    offset += count
    meter.start()
    started = time.perf_counter()
    await dispatch(db, sink.port, pool, until=all_sent, producer=asyncio.ensure_future(elsewhere.go()))
    timed("elsewhere", started, producer=elsewhere.cpu.value)
    sink.expect(count, "dispatcher (producer in its own process)")

    for per_transaction in args.per_transaction:
        await empty()
        meter.start()
        started = time.perf_counter()
        producer = asyncio.ensure_future(produce(db, count, per_transaction, offset=offset))
        offset += count
        await dispatch(db, sink.port, pool, until=all_sent, producer=producer)
        timed(f"inline:{per_transaction}", started)
        sink.expect(count, f"dispatcher ({per_transaction} per transaction)")
    return results


def report(rounds: list[list[tuple[str, float, dict]]], pool: int) -> None:
    keys = [key for key, _rate, _cpu in rounds[0]]
    table = {key: {"rate": [], "pooled": [], "naive": [], "cpu": []} for key in keys}
    for results in rounds:
        rates = {key: rate for key, rate, _cpu in results}
        for key, rate, cpu in results:
            row = table[key]
            row["rate"].append(rate)
            row["pooled"].append(rate / rates["pooled"])  # against the baselines of the same round
            row["naive"].append(rate / rates["naive"])
            row["cpu"].append(cpu)

    def spread(values: list[float]) -> str:
        return f"{median(values):5.2f} ({min(values):.2f}-{max(values):.2f})"

    print()
    print(f"  median of {len(rounds)} round(s); ratios against the baselines of the same round (min-max)")
    print(f"  {'':57} {'msg/s':>6} {'x pooled':>17} {'x naive':>17}   CPU % of a core: sink sender producer postgres")
    for key in keys:
        row = table[key]
        name = ROWS[key.split(":")[0]].format(pool=pool, n=key.partition(":")[2])
        cpu = {
            part: median([c.get(part, 0.0) for c in row["cpu"]]) for part in ("sink", "sender", "producer", "postgres")
        }
        print(
            f"  {name:57} {median(row['rate']):6.0f} {spread(row['pooled']):>17} {spread(row['naive']):>17}"
            f"   {cpu['sink']:4.0f} {cpu['sender']:6.0f} {cpu['producer']:8.0f} {cpu['postgres']:8.0f}"
        )
    print()
    print("  targets (issue 5): dispatcher >= 0.8 x pooled and >= 3.5 x naive.")
    print("  'sending only': the outbox was filled before the clock started (the emails rendered and queued);")
    print("  'end to end' adds rendering (Jinja2) and queueing, by another process (as flows and the web service")
    print("  do in production) or by the dispatcher's own. Every sender's messages were each accepted exactly")
    print("  once by the sink. A sink near 100 % of a core is the limit of the row.")


async def run(args) -> None:
    from approvals.db import Database as Db

    sink = Sink()
    sink.start()
    folder = Path(tempfile.mkdtemp(prefix="kehoach-bench-"))
    database = Database(args.postgres, folder)
    db = Db(database.url)
    rounds = []
    try:
        size = len(raw_messages(1, sink.port)[0])
        print(
            f"{args.messages} messages of {size} bytes per row to an aiosmtpd sink on {HOST}:{sink.port} "
            f"(own process); database: {'PostgreSQL' if args.postgres else 'SQLite file'}; "
            f"{args.rounds} round(s) of every row",
            flush=True,
        )
        for number in range(args.rounds):
            results = await one_round(args, sink, db, database, offset=number * 10 * args.messages)
            rates = {key: rate for key, rate, _cpu in results}
            print(
                f"  round {number + 1}: "
                + ", ".join(f"{key} {rate:.0f}" for key, rate in rates.items())
                + f" msg/s; sending only {rates['sending'] / rates['pooled']:.2f} x pooled",
                flush=True,
            )
            rounds.append(results)
    finally:
        await db.dispose()
        database.drop()
        shutil.rmtree(folder, ignore_errors=True)
        sink.stop()
    report(rounds, args.pool)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per row and round (default 2000)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of every row; the medians are printed (default 3)"
    )
    parser.add_argument("--postgres", metavar="URL", help="e.g. postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--pool", type=int, default=4, help="SMTP connections (pooled sender and dispatcher)")
    parser.add_argument(
        "--per-transaction",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[50],
        help="emails enqueued per transaction by the in-process producer, one row each (default 50; e.g. 1,50)",
    )
    args = parser.parse_args(argv)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
