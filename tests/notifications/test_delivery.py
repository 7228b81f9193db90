"""Delivery on real parts: the pooled dispatcher against an aiosmtpd server that fails on
purpose (tests/notifications/smtp_faults.py), on SQLite and PostgreSQL. Messages are
counted by Message-ID at the server: "once" means exactly one accepted copy."""

from __future__ import annotations

import asyncio
import time

import pytest

from notifications.dispatcher import Dispatcher
from notifications.models import MessageStatus
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
