"""The outbox and the dispatcher on real parts: the migrated sandbox database (SQLite and
PostgreSQL) and the recording aiosmtpd server. No mocks.

The sandbox database and the SMTP server are shared by the whole session, and a dispatcher
claims every due message in the outbox, so each test uses its own idempotency keys, filters
received mail by Message-ID, and deletes its rows afterwards (so that nothing due is left
for the next test's dispatcher).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import unicodedata
import uuid

import pytest
from sqlalchemy import func, select

from approvals.db import utcnow
from notifications.composing import placeholder
from notifications.dispatcher import Dispatcher
from notifications.models import MessageStatus, OutboxMessage
from notifications.outbox import HeaderInjection, MessageRefused, Recipient, enqueue
from notifications.render import RenderedEmail, Renderer
from service.prefect_server import free_port
from tests.notifications.helpers import (
    ADDRESS,
    DOMAIN,
    NAME,
    by_message_id,
    dispatcher,
    link_for,
    queue,
    row,
    set_row,
    simple_email,
    smtp_config,
)

# ---------------------------------------------------------------- enqueue


async def test_enqueue_stores_one_queued_row(database, keys):
    key = keys()
    subject = unicodedata.normalize("NFD", f"[Cần phê duyệt] Bước 1 – {key}")
    async with database.transaction() as session:
        message_uuid = await enqueue(
            session,
            idempotency_key=key,
            kind="approval_request",
            to=[Recipient(unicodedata.normalize("NFD", NAME), ADDRESS)],
            email=simple_email(subject),
            domain=DOMAIN,
        )
    assert isinstance(message_uuid, uuid.UUID)

    async with database.transaction() as session:
        rows = (
            (await session.execute(select(OutboxMessage).where(OutboxMessage.idempotency_key == key))).scalars().all()
        )
    assert len(rows) == 1
    stored = rows[0]
    assert stored.id == message_uuid
    assert stored.message_id == f"<{message_uuid}@{DOMAIN}>"
    assert stored.kind == "approval_request"
    assert stored.status == MessageStatus.queued.value
    assert stored.attempts == 0
    assert stored.lease_until is None and stored.sent_at is None and stored.last_error is None
    assert stored.next_attempt_at <= utcnow()
    assert stored.recipients == [{"name": NAME, "email": ADDRESS}]  # NFC
    assert stored.subject == unicodedata.normalize("NFC", subject)


async def test_the_same_idempotency_key_twice_stores_one_message(database, keys):
    key = keys()
    first = await queue(database, key, simple_email("first"))

    async with database.transaction() as session:  # a later transaction
        again = await enqueue(
            session,
            idempotency_key=key,
            kind="approval_request",
            to=[Recipient(NAME, ADDRESS)],
            email=simple_email("second"),
            domain=DOMAIN,
        )
    assert again is None

    other = keys()
    async with database.transaction() as session:  # twice in one transaction
        assert (
            await enqueue(
                session,
                idempotency_key=other,
                kind="receipt",
                to=[Recipient(NAME, ADDRESS)],
                email=simple_email("one"),
                domain=DOMAIN,
            )
            is not None
        )
        assert (
            await enqueue(
                session,
                idempotency_key=other,
                kind="receipt",
                to=[Recipient(NAME, ADDRESS)],
                email=simple_email("two"),
                domain=DOMAIN,
            )
            is None
        )

    async with database.transaction() as session:
        counts = dict(
            (
                await session.execute(
                    select(OutboxMessage.idempotency_key, func.count())
                    .where(OutboxMessage.idempotency_key.in_([key, other]))
                    .group_by(OutboxMessage.idempotency_key)
                )
            ).all()
        )
    assert counts == {key: 1, other: 1}
    stored = await row(database, key)
    assert stored.id == first.id and stored.subject == "first"  # the second call changed nothing
    assert (await row(database, other)).subject == "one"


async def test_a_transaction_that_fails_after_enqueue_leaves_no_message(database, keys):
    key = keys()

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with database.transaction() as session:
            assert (
                await enqueue(
                    session,
                    idempotency_key=key,
                    kind="approval_request",
                    to=[Recipient(NAME, ADDRESS)],
                    email=simple_email(),
                    domain=DOMAIN,
                )
                is not None
            )
            await session.flush()
            raise Boom()
    assert await row(database, key) is None


BAD_TEXT = ["\r\nBcc: victim@evil.example", "\n", "\r", "a\x00b", "tab\there", "del\x7f", "line\u2028sep", "nel\u0085"]


async def _assert_rejected(database, key: str, *, to: list[Recipient], email: RenderedEmail, error=HeaderInjection):
    with pytest.raises(error):
        async with database.transaction() as session:
            await enqueue(session, idempotency_key=key, kind="approval_request", to=to, email=email, domain=DOMAIN)
    assert await row(database, key) is None


@pytest.mark.parametrize("bad", BAD_TEXT)
async def test_a_control_character_in_the_subject_is_rejected(database, keys, bad):
    await _assert_rejected(database, keys(), to=[Recipient(NAME, ADDRESS)], email=simple_email(f"Chủ đề {bad} x"))


@pytest.mark.parametrize("bad", BAD_TEXT)
async def test_a_control_character_in_a_recipient_name_is_rejected(database, keys, bad):
    to = [Recipient(NAME, ADDRESS), Recipient(f"Nguyễn Văn A{bad}", "a.nv@lang-son.example")]
    await _assert_rejected(database, keys(), to=to, email=simple_email())


@pytest.mark.parametrize("bad", BAD_TEXT)
async def test_a_control_character_in_an_address_is_rejected(database, keys, bad):
    await _assert_rejected(database, keys(), to=[Recipient(NAME, f"hanh{bad}@lang-son.example")], email=simple_email())


@pytest.mark.parametrize(
    "address",
    [
        "not-an-address",
        "hanh@localhost",
        "@lang-son.example",
        "hanh@",
        "hanh@@lang-son.example",
        "hanh nt@lang-son.example",
        "<hanh@lang-son.example>",
        "hanh@lang-son.example, evil@evil.example",
        "hanh@lang-son.example;evil@evil.example",
        '"hanh"@lang-son.example',
        "",
    ],
)
async def test_an_invalid_address_is_rejected(database, keys, address):
    await _assert_rejected(database, keys(), to=[Recipient(NAME, address)], email=simple_email(), error=MessageRefused)


# ---------------------------------------------------------------- dispatcher


async def test_the_dispatcher_sends_a_queued_message(database, keys, quiet_outbox, smtp_server):
    key = keys()
    rendered = Renderer().render(
        "approval_request",
        "vi",
        title="Giám đốc",
        name=unicodedata.normalize("NFD", NAME),
        cycle=f"Năm 2027 {key}",
        stage="Phê duyệt kế hoạch",
        agency="Sở Khoa học và Công nghệ",
        due="29/11/2026",
        summary="",
        link=placeholder("approval_link", "abc"),
        problem="",
    )
    assert not rendered.subject.isascii()
    queued = await queue(database, key, rendered)

    handled = await dispatcher(database, smtp_server.port).run_once()
    assert handled == 1

    received = smtp_server.wait_for(by_message_id(queued.message_id), timeout=5)
    assert smtp_server.count(by_message_id(queued.message_id)) == 1
    assert received.envelope_to == [ADDRESS]
    message = received.message
    assert message["Message-ID"] == queued.message_id
    assert message["Subject"] == rendered.subject  # decoded back to the Vietnamese subject
    raw = message.as_bytes()
    assert raw.isascii()
    raw_subject = re.search(rb"^Subject:(.*(?:\r?\n[ \t].*)*)", raw, re.MULTILINE).group(1)  # with folded lines
    assert b"=?utf-8?" in raw_subject.lower(), raw_subject
    assert NAME in str(message["To"]) and ADDRESS in str(message["To"])
    assert message["Auto-Submitted"] == "auto-generated"  # no autoresponder answers it (RFC 3834)
    assert message["X-Auto-Response-Suppress"] == "All"  # nor Exchange's out-of-office
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]

    resolved = link_for("abc")
    for part in (received.text, received.html):
        assert resolved in part
        assert "[[secret:" not in part
        assert NAME in part
    assert f'href="{resolved}"' in received.html

    stored = await row(database, key)
    assert stored.status == MessageStatus.sent.value
    assert stored.attempts == 1 and stored.sent_at is not None and stored.lease_until is None
    assert stored.last_error is None
    secret = placeholder("approval_link", "abc")
    assert secret in stored.text_body and secret in stored.html_body  # the outbox never holds the link
    assert resolved not in stored.text_body and resolved not in stored.html_body

    assert await dispatcher(database, smtp_server.port).run_once() == 0  # sent once, not again
    assert smtp_server.count(by_message_id(queued.message_id)) == 1


async def test_a_451_answer_keeps_the_message_queued_and_it_is_retried_once(database, keys, quiet_outbox, smtp_server):
    key = keys()
    queued = await queue(database, key)
    smtp_server.fail_next("451 4.3.0 try again later")

    before = utcnow()
    assert await dispatcher(database, smtp_server.port, base_seconds=60).run_once() == 1
    stored = await row(database, key)
    assert stored.status == MessageStatus.queued.value
    assert stored.attempts == 1
    assert stored.next_attempt_at > utcnow()
    assert stored.next_attempt_at >= before + dt.timedelta(seconds=29)  # at least half the 60 s base (jitter)
    assert "451" in stored.last_error
    assert stored.lease_until is None
    assert smtp_server.count(by_message_id(queued.message_id)) == 0

    assert await dispatcher(database, smtp_server.port).run_once() == 0  # not due yet

    await set_row(database, key, next_attempt_at=utcnow() - dt.timedelta(seconds=1))
    assert await dispatcher(database, smtp_server.port).run_once() == 1
    assert await dispatcher(database, smtp_server.port).run_once() == 0

    assert smtp_server.count(by_message_id(queued.message_id)) == 1
    stored = await row(database, key)
    assert stored.status == MessageStatus.sent.value
    assert stored.attempts == 2 and stored.last_error is None


async def test_a_550_answer_fails_the_message_for_good(database, keys, quiet_outbox, smtp_server):
    key = keys()
    queued = await queue(database, key)
    smtp_server.fail_next("550 5.1.1 mailbox unavailable")

    assert await dispatcher(database, smtp_server.port, base_seconds=0.01).run_once() == 1
    stored = await row(database, key)
    assert stored.status == MessageStatus.failed.value
    assert stored.attempts == 1
    assert "550" in stored.last_error
    assert stored.lease_until is None and stored.sent_at is None

    assert await dispatcher(database, smtp_server.port, base_seconds=0.01).run_once() == 0
    stored = await row(database, key)
    assert stored.status == MessageStatus.failed.value and stored.attempts == 1
    assert smtp_server.count(by_message_id(queued.message_id)) == 0


async def test_smtp_down_then_up_delivers_once(database, keys, quiet_outbox, smtp_server):
    key = keys()
    queued = await queue(database, key)
    retry = dict(base_seconds=0.05, max_seconds=0.1)

    down = dispatcher(database, free_port(), **retry)  # nothing listens there: connection refused
    assert await down.run_once() == 1
    stored = await row(database, key)
    assert stored.status == MessageStatus.queued.value
    assert stored.attempts == 1
    assert stored.last_error and "connect" in stored.last_error.lower(), stored.last_error
    assert stored.lease_until is None

    await asyncio.sleep(0.2)  # past the (at most 0.1 s) back-off
    up = dispatcher(database, smtp_server.port, **retry)
    assert await up.run_once() == 1
    assert await up.run_once() == 0

    assert smtp_server.count(by_message_id(queued.message_id)) == 1  # no duplicate
    stored = await row(database, key)
    assert stored.status == MessageStatus.sent.value
    assert stored.attempts == 2 and stored.last_error is None


async def test_a_message_left_by_a_dead_dispatcher_is_picked_up_after_its_lease(
    database, keys, quiet_outbox, smtp_server
):
    expired, held = keys(), keys()
    expired_msg = await queue(database, expired)
    held_msg = await queue(database, held)
    now = utcnow()
    await set_row(
        database, expired, status=MessageStatus.sending.value, attempts=1, lease_until=now - dt.timedelta(seconds=5)
    )
    await set_row(
        database, held, status=MessageStatus.sending.value, attempts=1, lease_until=now + dt.timedelta(hours=1)
    )

    assert await dispatcher(database, smtp_server.port).run_once() == 1

    assert smtp_server.count(by_message_id(expired_msg.message_id)) == 1
    stored = await row(database, expired)
    assert stored.status == MessageStatus.sent.value and stored.attempts == 2

    assert smtp_server.count(by_message_id(held_msg.message_id)) == 0
    stored = await row(database, held)
    assert stored.status == MessageStatus.sending.value and stored.attempts == 1
    assert stored.lease_until > utcnow()


async def test_a_message_that_cannot_be_built_fails_alone_and_the_batch_goes_on(
    database, keys, quiet_outbox, smtp_server
):
    broken, fine = keys(), keys()
    await queue(database, broken, simple_email(text=f"Link: {placeholder('no_such_resolver', 'x')}\n"))
    await queue(database, fine)
    await dispatcher(database, smtp_server.port).run_once()
    failed = await row(database, broken)
    assert failed.status == MessageStatus.failed.value and "no_such_resolver" in failed.last_error
    sent = await row(database, fine)
    assert sent.status == MessageStatus.sent.value
    assert smtp_server.count(by_message_id(sent.message_id)) == 1


async def test_a_resolved_link_is_escaped_in_the_html_part(database, keys, quiet_outbox, smtp_server):
    key = keys()
    await queue(database, key, simple_email(html=f'<a href="{placeholder("approval_link", "q")}">x</a>'))
    d = Dispatcher(
        database,
        smtp_config(smtp_server.port),
        resolvers={"approval_link": lambda arg: f'https://kehoach.example/a/{arg}?x=1&y="2"'},
    )
    await d.run_once()
    sent = await row(database, key)
    received = smtp_server.wait_for(by_message_id(sent.message_id), timeout=10)
    assert 'href="https://kehoach.example/a/q?x=1&amp;y=&quot;2&quot;"' in received.html
