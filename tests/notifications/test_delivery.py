"""Delivery on real parts: the pooled dispatcher against an aiosmtpd server that fails on
purpose (tests/notifications/smtp_faults.py), on SQLite and PostgreSQL. Messages are
counted by Message-ID at the server: "once" means exactly one accepted copy."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select

from approvals.db import Database
from notifications.dispatcher import Dispatcher, RetryPolicy
from notifications.models import MessageStatus, OutboxMessage
from notifications.send_round import SENT, Outcome
from tests.notifications.helpers import (
    DOMAIN,
    dispatcher,
    link_for,
    queue,
    queue_many,
    row,
    rows,
    set_row,
    smtp_config,
)
from tests.notifications.smtp_faults import DROP, HANG, FaultySmtpServer
from tests.notifications.tls import make_certificates, server_context

FAST_RETRY = dict(base_seconds=0.01, max_seconds=0.02)


async def settle() -> None:
    await asyncio.sleep(0.05)  # past a FAST_RETRY back-off


# ---------------------------------------------------------------- the pool


async def test_a_batch_goes_out_at_once_over_a_few_reused_connections(database, keys, faulty_smtp):
    message_ids = await queue_many(database, [keys() for _ in range(60)])
    sender = Dispatcher(
        database, smtp_config(faulty_smtp.port), resolvers={"approval_link": link_for}, pool_size=4, batch_size=30
    )
    try:
        assert await sender.run_once(keep_connections=True) == 30
        assert await sender.run_once(keep_connections=True) == 30
        assert await sender.run_once(keep_connections=True) == 0
    finally:
        await sender.aclose()

    faulty_smtp.wait_for_count(set(message_ids), timeout=10)
    assert sorted(faulty_smtp.message_ids) == sorted(message_ids)
    assert set(faulty_smtp.message_ids.values()) == {1}
    assert faulty_smtp.connections == 4 and sender.pool.opened == 4  # 60 messages, 4 connections, 2 rounds
    assert faulty_smtp.max_concurrent == 4  # all four at once
    assert {accepted.helo for accepted in faulty_smtp.accepted} == {DOMAIN}  # local_hostname, no getfqdn()
    assert all(
        stored.status == MessageStatus.sent.value and stored.attempts == 1
        for stored in await rows(database, keys.prefix)
    )


@pytest.fixture
def certificates(tmp_path):
    return make_certificates(tmp_path)


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_tls_and_login_as_configured(database, keys, nothing_due, certificates, mode):
    ca, cert, key = certificates
    server = FaultySmtpServer(
        tls_context=server_context(cert, key),
        implicit_tls=mode == "tls",
        require_starttls=mode == "starttls",
        logins={"kehoach": "s3cret-pass"},
    )
    server.start()
    try:
        good = await queue(database, keys())
        tls = dict(tls=mode, ca_file=str(ca), username="kehoach", password="s3cret-pass")
        assert await dispatcher(database, server.port, smtp=tls).run_once() == 1
        [accepted] = server.received(good.message_id)
        assert accepted.tls and accepted.login == "kehoach" and accepted.helo == DOMAIN

        refused_key = keys()
        await queue(database, refused_key)
        wrong = dict(tls, password="wrong")
        assert await dispatcher(database, server.port, smtp=wrong, **FAST_RETRY).run_once() == 1
        stored = await row(database, refused_key)
        assert stored.status == MessageStatus.queued.value and "535" in stored.last_error  # waits for a fix

        untrusted = dict(tls, ca_file=None)  # the server's certificate is not trusted: nothing is sent
        await settle()
        assert await dispatcher(database, server.port, smtp=untrusted, **FAST_RETRY).run_once() == 1
        stored = await row(database, refused_key)
        assert stored.status == MessageStatus.queued.value and "certificate" in stored.last_error.lower()
        assert server.count(stored.message_id) == 0
    finally:
        server.stop()


# ---------------------------------------------------------------- failure modes


async def test_421_at_the_greeting_is_retried_and_delivered_once(database, keys, faulty_smtp):
    key = keys()
    queued = await queue(database, key)
    faulty_smtp.fail_next("greeting", "421 4.3.2 Service not available, closing channel")
    sender = dispatcher(database, faulty_smtp.port, **FAST_RETRY)

    assert await sender.run_once() == 1
    stored = await row(database, key)
    assert stored.status == MessageStatus.queued.value and stored.attempts == 1 and "421" in stored.last_error
    assert faulty_smtp.count(queued.message_id) == 0

    await settle()
    assert await sender.run_once() == 1
    stored = await row(database, key)
    assert stored.status == MessageStatus.sent.value and stored.attempts == 2 and stored.last_error is None
    assert faulty_smtp.count(queued.message_id) == 1


@pytest.mark.parametrize(
    "stage, reply",
    [
        ("mail", "451 4.3.0 try again later"),
        ("rcpt", "450 4.2.1 mailbox busy"),
        ("data", "451 4.3.0 try again later"),
        ("data", "421 4.3.2 shutting down"),
        ("mail", DROP),
        ("rcpt", DROP),
    ],
)
async def test_a_temporary_failure_is_retried_and_delivered_once(database, keys, faulty_smtp, stage, reply):
    key = keys()
    queued = await queue(database, key)
    faulty_smtp.fail_next(stage, reply)
    sender = dispatcher(database, faulty_smtp.port, **FAST_RETRY)

    assert await sender.run_once() == 1
    stored = await row(database, key)
    assert stored.status == MessageStatus.queued.value and stored.attempts == 1 and stored.last_error
    assert stored.lease_until is None
    assert faulty_smtp.count(queued.message_id) == 0

    await settle()
    assert await sender.run_once() == 1
    assert await sender.run_once() == 0
    stored = await row(database, key)
    assert stored.status == MessageStatus.sent.value and stored.attempts == 2 and stored.last_error is None
    assert faulty_smtp.count(queued.message_id) == 1


@pytest.mark.parametrize(
    "stage, reply",
    [
        ("mail", "553 5.7.1 sender not allowed"),
        ("rcpt", "550 5.1.1 mailbox unavailable"),
        ("data", "554 5.6.0 message rejected"),
    ],
)
async def test_a_permanent_failure_is_not_retried(database, keys, faulty_smtp, stage, reply):
    key = keys()
    queued = await queue(database, key)
    faulty_smtp.fail_next(stage, reply)
    sender = dispatcher(database, faulty_smtp.port, **FAST_RETRY)

    assert await sender.run_once() == 1
    await settle()
    assert await sender.run_once() == 0
    stored = await row(database, key)
    assert stored.status == MessageStatus.failed.value and stored.attempts == 1
    assert reply.split()[0] in stored.last_error
    assert stored.lease_until is None and stored.sent_at is None
    assert faulty_smtp.count(queued.message_id) == 0


async def test_a_drop_after_data_may_duplicate_only_with_the_same_message_id(database, keys, faulty_smtp):
    key = keys()
    queued = await queue(database, key)
    faulty_smtp.fail_next("data", DROP)  # the server keeps the message but never answers
    sender = dispatcher(database, faulty_smtp.port, **FAST_RETRY)

    assert await sender.run_once() == 1
    stored = await row(database, key)
    assert stored.status == MessageStatus.queued.value and stored.attempts == 1  # unknown outcome: retried
    await settle()
    assert await sender.run_once() == 1
    assert (await row(database, key)).status == MessageStatus.sent.value

    copies = faulty_smtp.received(queued.message_id)
    assert len(copies) == 2
    assert list(faulty_smtp.message_ids) == [queued.message_id]  # no copy under another Message-ID
    assert copies[0].message["Subject"] == copies[1].message["Subject"] == queued.subject


@pytest.mark.parametrize("how", ["dropped by the server", "server restarted"])
async def test_a_stale_pooled_connection_is_replaced_without_a_retry(database, keys, faulty_smtp, how):
    first, second = keys(), keys()
    await queue(database, first)
    sender = dispatcher(database, faulty_smtp.port)
    try:
        assert await sender.run_once(keep_connections=True) == 1
        queued = await queue(database, second)
        if how == "server restarted":
            faulty_smtp.down()
            faulty_smtp.up()
        else:
            faulty_smtp.fail_next("mail", DROP)
        assert await sender.run_once(keep_connections=True) == 1
    finally:
        await sender.aclose()
    stored = await row(database, second)
    assert stored.status == MessageStatus.sent.value and stored.attempts == 1 and stored.last_error is None
    assert faulty_smtp.count(queued.message_id) == 1
    assert faulty_smtp.connections == 2


async def test_temporary_failures_end_after_max_attempts(database, keys, faulty_smtp):
    key = keys()
    queued = await queue(database, key)
    faulty_smtp.fail_next("data", *["451 4.3.0 later"] * 3)
    sender = dispatcher(database, faulty_smtp.port, max_attempts=3, **FAST_RETRY)
    for _ in range(3):
        assert await sender.run_once() == 1
        await settle()
    assert await sender.run_once() == 0
    stored = await row(database, key)
    assert stored.status == MessageStatus.failed.value and stored.attempts == 3 and "451" in stored.last_error
    assert faulty_smtp.count(queued.message_id) == 0


async def test_an_unreachable_server_never_fails_a_message_for_good(database, keys, faulty_smtp):
    key = keys()
    queued = await queue(database, key)
    sender = dispatcher(database, faulty_smtp.port, max_attempts=2, **FAST_RETRY)
    faulty_smtp.down()
    for _ in range(4):
        assert await sender.run_once() == 1
        await settle()
    stored = await row(database, key)
    assert stored.status == MessageStatus.queued.value and stored.attempts == 4
    assert "connect" in stored.last_error.lower()

    faulty_smtp.up()
    assert await sender.run_once() == 1
    stored = await row(database, key)
    assert stored.status == MessageStatus.sent.value and stored.attempts == 5
    assert faulty_smtp.count(queued.message_id) == 1


async def test_a_hung_send_is_cut_off_before_the_lease_ends(database, keys, faulty_smtp):
    key = keys()
    await queue(database, key)
    faulty_smtp.fail_next("data", HANG)
    sender = dispatcher(database, faulty_smtp.port, smtp=dict(timeout=30), lease_seconds=2.0, lease_margin=0.5)

    started = time.monotonic()
    assert await sender.run_once() == 1
    took = time.monotonic() - started
    assert 1.0 < took < 2.0, took  # cut at lease - margin, before anyone else may claim it
    stored = await row(database, key)
    assert stored.status == MessageStatus.queued.value and stored.attempts == 1 and "timeout" in stored.last_error
    assert stored.lease_until is None


async def test_stopping_gives_unstarted_messages_back(database, keys, faulty_smtp):
    first = keys()
    await queue(database, first)
    later = [keys() for _ in range(4)]
    await queue_many(database, later)
    faulty_smtp.fail_next("data", HANG)
    sender = dispatcher(
        database,
        faulty_smtp.port,
        pool_size=1,
        smtp=dict(timeout=30),
        lease_seconds=2.0,
        lease_margin=0.5,
        **FAST_RETRY,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(sender.run_forever(interval=0.05, stop=stop))
    await asyncio.sleep(0.5)  # the first send hangs
    stop.set()
    async with asyncio.timeout(5):
        await running

    stored = await row(database, first)
    assert stored.status == MessageStatus.queued.value and stored.attempts == 1
    for key in later:  # claimed, never started: back in the queue as if never claimed
        stored = await row(database, key)
        assert stored.status == MessageStatus.queued.value and stored.attempts == 0 and stored.lease_until is None
    assert not faulty_smtp.message_ids


async def test_a_late_result_cannot_overwrite_a_newer_claim(database, keys, faulty_smtp):
    key = keys()
    queued = await queue(database, key)
    slow = dispatcher(database, faulty_smtp.port)
    [claimed], lease = await slow.claim()
    await set_row(database, key, lease_until=lease.replace(year=2000))  # its lease ran out
    assert await dispatcher(database, faulty_smtp.port).run_once() == 1  # another dispatcher sends it
    assert faulty_smtp.count(queued.message_id) == 1

    await slow._record([(claimed, Outcome("retry", "451 late"))], lease)  # fenced: changes nothing
    await slow._record([(claimed, SENT)], lease)
    stored = await row(database, key)
    assert stored.status == MessageStatus.sent.value and stored.attempts == 2 and stored.last_error is None


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
