"""Delivery through outages and races on real parts: an aiosmtpd server down for a while, three
dispatchers racing for the outbox, the shortest lease; on SQLite and PostgreSQL. Messages are
counted by Message-ID at the server: "once" means exactly one accepted copy."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select

from approvals.db import Database
from notifications.dispatcher import Dispatcher, RetryPolicy
from notifications.models import MessageStatus, OutboxMessage
from tests.notifications.helpers import (
    link_for,
    queue,
    queue_many,
    row,
    rows,
    smtp_config,
)

# ---------------------------------------------------------------- outages and concurrency


async def _run_until_all_sent(
    database, prefix: str, dispatchers: list[Dispatcher], total: int, *, timeout: float, during=None
) -> None:
    stop = asyncio.Event()

    async def watch() -> None:
        try:
            while True:
                async with database.transaction() as session:
                    done = (
                        await session.execute(
                            select(func.count()).where(
                                OutboxMessage.idempotency_key.like(f"{prefix}%"),
                                OutboxMessage.status.in_([MessageStatus.sent.value, MessageStatus.failed.value]),
                            )
                        )
                    ).scalar()
                if done >= total:
                    return
                await asyncio.sleep(0.2)
        finally:
            stop.set()

    extra = [during()] if during else []
    async with asyncio.timeout(timeout):
        await asyncio.gather(watch(), *extra, *(d.run_forever(interval=0.05, stop=stop) for d in dispatchers))


async def test_smtp_down_for_a_while_then_back_loses_and_duplicates_nothing(database, keys, faulty_smtp):
    total = 400
    message_ids = await queue_many(database, [keys() for _ in range(total)])
    retry = RetryPolicy(base_seconds=0.05, max_seconds=0.3)
    dispatchers = [Dispatcher(database, smtp_config(faulty_smtp.port), retry=retry, batch_size=20) for _ in range(2)]

    async def outage() -> None:
        while len(faulty_smtp.message_ids) < 50:  # down in the middle of the stream
            await asyncio.sleep(0.01)
        faulty_smtp.down()
        await asyncio.sleep(1.5)
        faulty_smtp.up()

    await _run_until_all_sent(database, keys.prefix, dispatchers, total, timeout=60, during=outage)

    stored = await rows(database, keys.prefix)
    assert all(message.status == MessageStatus.sent.value for message in stored)  # 0 lost
    assert sorted(faulty_smtp.message_ids) == sorted(message_ids)
    assert set(faulty_smtp.message_ids.values()) == {1}  # 0 duplicated
    assert any(message.attempts > 1 for message in stored)  # the outage really hit some


@pytest.mark.postgres_only  # SQLite ignores FOR UPDATE: its writers simply take turns
@pytest.mark.stress  # 10,000 messages: the full suite's; the fast tier keeps the outage tests above
async def test_three_dispatchers_send_10000_messages_each_exactly_once(sandbox, database, keys, faulty_smtp):
    total = 10_000
    message_ids = await queue_many(database, [keys() for _ in range(total)])
    assert len(message_ids) == total
    databases = [Database(sandbox.url) for _ in range(3)]  # three processes' worth of connections
    dispatchers = [
        Dispatcher(db, smtp_config(faulty_smtp.port), resolvers={"approval_link": link_for}, pool_size=4)
        for db in databases
    ]
    started = time.monotonic()
    try:
        await _run_until_all_sent(database, keys.prefix, dispatchers, total, timeout=120)
    finally:
        for db in databases:
            await db.dispose()
    took = time.monotonic() - started
    print(
        f"\n3 dispatchers, {total} messages: {took:.1f} s ({total / took:.0f}/s), "
        f"each sent {[d.stats['sent'] for d in dispatchers]}"
    )

    assert len(faulty_smtp.accepted) == total
    assert sorted(faulty_smtp.message_ids) == sorted(message_ids)
    assert set(faulty_smtp.message_ids.values()) == {1}
    assert sum(d.stats["sent"] for d in dispatchers) == total
    assert all(d.stats["sent"] > 0 for d in dispatchers), "the three did not share the work"
    stored = await rows(database, keys.prefix)
    assert len(stored) == total
    assert all(m.status == MessageStatus.sent.value and m.attempts == 1 for m in stored)


async def test_the_shortest_lease_ops_may_configure_still_sends(database, keys, faulty_smtp):
    """`KEHOACH_DISPATCH_LEASE_SECONDS` accepts 10 s: the margin kept at a lease's end must not
    eat it (a 10 s margin once left no time to start a send, and nothing ever went out)."""
    from approvals.config import Settings
    from service.wiring import make_dispatcher

    settings = Settings(
        link_secret="s" * 48, smtp_host="127.0.0.1", smtp_port=faulty_smtp.port, dispatch_lease_seconds=10
    )
    message = await queue(database, keys())
    sender = make_dispatcher(settings, database)
    try:
        assert await sender.run_once() == 1
    finally:
        await sender.aclose()
    faulty_smtp.wait_for_count({message.message_id}, timeout=10)
    assert (await row(database, message.idempotency_key)).status == MessageStatus.sent.value
