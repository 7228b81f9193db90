"""Zalo and SMS through the outbox (notifications/channel_outbox.py, channel_dispatcher.py),
against the fake providers (tests/support/fake_zns.py, fake_esms.py), on each backend, in a
database of each test's own (a dispatcher claims every due row of its table).

What it shows: a message asking an official to act is queued on their first phone channel
beside its email, once however often it is queued; a refused template falls back to SMS; a
timeout or a 5xx is retried, then sent; a reminder waits out the night; two dispatchers racing
send each message once; a dispatcher killed after eSMS took a message does not make it send
twice; the email goes as before; an official who has not agreed gets the email only."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from pathlib import Path

from sqlalchemy import select

from approvals.db import Database, utcnow
from approvals.plan import parse_plan
from approvals.tokens import APPROVAL_LINK
from approvals.wording.message_types import LinkMessage, PlainMessage
from notifications.channel_dispatcher import ChannelDispatcher, ShortLinks
from notifications.channel_outbox import queue_phone_messages
from notifications.channels.base import VIETNAM
from notifications.channels.segments import sms_segments
from notifications.channels.templates import MAX_SMS_SEGMENTS
from notifications.dispatcher import RetryPolicy
from notifications.links import queue_link_messages
from notifications.models import ChannelOutboxMessage
from notifications.render import Renderer
from notifications.short_links import CODE_LENGTH, SHORT_PATH, short_link_target
from tests.notifications.channels.conftest import TEMPLATES
from tests.notifications.helpers import DOMAIN, dispatcher, link_for

MINIMAL = (Path(__file__).resolve().parents[2] / "plans/minimal-valid.yaml").read_text(encoding="utf-8")
TITLE = '    title: {vi: "Giám đốc Sở", en: "Director"}\n'
REACHED = (
    '    phone: "0912 345 678"\n    consent: {zalo: 2025-03-10, sms: 2025-03-10}\n    channels: [zalo, sms, email]\n'
)
NOT_YET = """  - id: dost_deputy
    name: "Hoàng Văn Tú"
    email: phogiamdoc@dost.example
    agency: dost
    roles: [lead_agency.director]
    title: {vi: "Phó Giám đốc Sở", en: "Deputy director"}
    phone: "0912 345 679"
    consent: {zalo: 2099-01-01, basis: "Phiếu đồng ý số 12, có hiệu lực từ 2099"}
    channels: [zalo, email]
"""
PLAN = parse_plan(MINIMAL.replace(TITLE, TITLE + REACHED + NOT_YET), "reach.yaml")
CONTEXT = {
    "title": "Giám đốc Sở",
    "name": "Nông Thị Hạnh",
    "cycle": "Kế hoạch năm 2027",
    "stage": "1. Định hướng",
    "agency": "Sở Khoa học và Công nghệ",
    "due": "17:00 ngày 29/11/2026 (giờ Việt Nam)",
    "summary": "Định hướng kế hoạch năm 2027",
}
HANH, TU = ("dost_director", "giamdoc@dost.example"), ("dost_deputy", "phogiamdoc@dost.example")
ON = ("zalo", "sms")  # the channels the deployment turned on
FAST_RETRY = RetryPolicy(base_seconds=1.0, max_seconds=2.0)


def asking(kind: str = "approval_request", *, to: tuple[str, str] = HANH) -> LinkMessage:
    key = f"{kind}:{uuid.uuid4().hex}"
    official_id, email = to
    return LinkMessage(
        kind=kind,
        key=key,
        language="vi",
        name=CONTEXT["name"],
        email=email,
        context=dict(CONTEXT),
        link_argument=f"{uuid.uuid4()}:1",
        official_id=official_id,
    )


async def queue(database: Database, *messages: LinkMessage, now: dt.datetime | None = None) -> tuple[int, int]:
    """Queue the emails and the phone messages as `Emails` does, in one transaction: how many of each."""
    async with database.transaction() as session:
        phones = await queue_phone_messages(session, PLAN, messages, on=ON, link=APPROVAL_LINK, now=now)
        emails = await queue_link_messages(
            session, renderer=Renderer(), link_name=APPROVAL_LINK, domain=DOMAIN, messages=messages
        )
    return emails, phones


async def rows(database: Database, message: LinkMessage | PlainMessage) -> list[ChannelOutboxMessage]:
    async with database.reads() as session:
        found = await session.execute(
            select(ChannelOutboxMessage)
            .where(ChannelOutboxMessage.email_key == message.key)
            .order_by(ChannelOutboxMessage.created_at, ChannelOutboxMessage.channel.desc())
        )
        return list(found.scalars())


def short_link(argument: str) -> str:
    """The link as the channels get it here: short, as SMS needs it (an approval link's token
    would take the text past two segments; short links are issue 25's line 6)."""
    return f"https://kehoach.example/s/{argument[:10]}"


def channel_dispatcher(database: Database, channels, **options) -> ChannelDispatcher:
    return ChannelDispatcher(database, channels, resolvers={APPROVAL_LINK: short_link}, retry=FAST_RETRY, **options)


def in_vietnam(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=VIETNAM)


async def test_a_request_goes_on_zalo_once_with_its_key_and_link(private_database, channels, fake_zalo):
    message = asking()
    assert await queue(private_database, message) == (1, 1)
    assert await queue(private_database, message) == (0, 0)  # a replay queues nothing twice
    assert await channel_dispatcher(private_database, channels).run_once() == 1
    [row] = await rows(private_database, message)
    assert (row.channel, row.status, row.recipient) == ("zalo", "sent", "+84912345678")
    [sent] = fake_zalo.delivered
    assert sent["tracking_id"] == row.idempotency_key == f"{message.key}@zalo"
    assert row.provider_id == fake_zalo.by_tracking[row.idempotency_key]
    assert sent["template_data"]["duong_dan"] == short_link(message.link_argument)  # resolved as it is sent
    assert row.params["link"].startswith("[[secret:")  # the outbox keeps the placeholder, never the link


async def test_a_refused_template_falls_back_to_sms(private_database, channels, fake_zalo, fake_esms):
    fake_zalo.refuse_template(TEMPLATES["approval_request"])
    message = asking()
    await queue(private_database, message)
    dispatch = channel_dispatcher(private_database, channels)
    await dispatch.run_once()
    zalo, sms = await rows(private_database, message)
    assert (zalo.channel, zalo.status, zalo.error_code) == ("zalo", "failed", "-131")
    assert zalo.fallback_key == sms.idempotency_key == f"{message.key}@sms"
    assert (sms.status, sms.fallbacks) == ("queued", [])
    await dispatch.run_once()
    [delivered] = fake_esms.delivered
    assert delivered["RequestId"] == f"{message.key}@sms" and delivered["Phone"] == "84912345678"
    assert delivered["Content"].endswith(short_link(message.link_argument))
    _, sms = await rows(private_database, message)
    assert sms.status == "sent" and sms.provider_id == "esms-1"
    assert dispatch.stats["zalo", "fell_back"] == 1 and dispatch.stats["sms", "sent"] == 1


async def test_past_the_last_phone_channel_nothing_more_is_queued(private_database, channels, fake_esms):
    """Zalo not turned on, SMS refusing for good: both fail, the email is what reaches the official."""
    fake_esms.answer_code("99")
    message = asking()
    await queue(private_database, message)
    dispatch = channel_dispatcher(private_database, {"sms": channels["sms"]})
    await dispatch.run_once()
    await dispatch.run_once()
    zalo, sms = await rows(private_database, message)
    assert (zalo.error_code, sms.error_code) == ("channel-off", "99")
    assert (zalo.status, sms.status, sms.fallback_key) == ("failed", "failed", None)
    assert await dispatch.run_once() == 0


async def test_a_5xx_is_retried_then_sent(private_database, channels, fake_zalo):
    message = asking()
    await queue(private_database, message)
    dispatch = channel_dispatcher(private_database, channels)
    fake_zalo.fail_with(503)
    try:
        await dispatch.run_once()
    finally:
        fake_zalo.fail_with(None)
    [row] = await rows(private_database, message)
    assert (row.status, row.attempts, row.error_code) == ("queued", 1, "http-503")
    assert fake_zalo.delivered == []
    assert await dispatch.run_once(now=row.next_attempt_at) == 1
    [row] = await rows(private_database, message)
    assert (row.status, row.attempts, row.channel) == ("sent", 2, "zalo")
    assert [body["tracking_id"] for body in fake_zalo.delivered] == [row.idempotency_key]


async def test_a_timeout_is_retried_with_the_same_request_id_and_sent_once(private_database, channels, fake_esms):
    """eSMS took the first request but answered too late: the retry carries the same RequestId,
    so whichever of the two eSMS reads second is a duplicate, and the SMS goes out once."""
    message = asking()
    await queue(private_database, message)
    dispatch = channel_dispatcher(private_database, {"sms": channels["sms"]})  # zalo off: on to SMS
    await dispatch.run_once()
    fake_esms.hang()
    try:
        await dispatch.run_once()
    finally:
        fake_esms.release()
    _, sms = await rows(private_database, message)
    assert (sms.status, sms.attempts, sms.error_code) == ("queued", 1, "timeout")
    assert await dispatch.run_once(now=sms.next_attempt_at) == 1
    _, sms = await rows(private_database, message)
    assert (sms.status, sms.attempts) == ("sent", 2)
    assert [body["RequestId"] for body in fake_esms.sends()] == [sms.idempotency_key] * 2
    assert [body["RequestId"] for body in fake_esms.delivered] == [sms.idempotency_key]


async def test_a_reminder_queued_at_night_waits_for_seven(private_database, channels, fake_zalo):
    night = in_vietnam((utcnow() + dt.timedelta(days=2)).astimezone(VIETNAM).date(), 23, 10)
    morning = in_vietnam(night.date() + dt.timedelta(days=1), 7)
    reminder, request = asking("reminder"), asking()
    await queue(private_database, reminder, request, now=night)
    [waiting] = await rows(private_database, reminder)
    assert waiting.next_attempt_at == morning  # not dropped: due at 07:00
    dispatch = channel_dispatcher(private_database, channels)
    assert await dispatch.run_once(now=night + dt.timedelta(minutes=5)) == 1  # the request, a transaction
    assert [body["template_id"] for body in fake_zalo.delivered] == [TEMPLATES["approval_request"]]
    assert await dispatch.run_once(now=morning - dt.timedelta(minutes=1)) == 0
    assert await dispatch.run_once(now=morning + dt.timedelta(minutes=1)) == 1
    assert [body["template_id"] for body in fake_zalo.delivered][1:] == [TEMPLATES["reminder"]]


async def test_a_reminder_due_as_the_night_starts_is_held_not_counted(private_database, channels, fake_zalo):
    evening = in_vietnam((utcnow() + dt.timedelta(days=2)).astimezone(VIETNAM).date(), 21, 59)
    reminder = asking("reminder")
    await queue(private_database, reminder, now=evening)
    dispatch = channel_dispatcher(private_database, channels)
    assert await dispatch.run_once(now=evening + dt.timedelta(minutes=2)) == 1  # claimed at 22:01
    [held] = await rows(private_database, reminder)
    assert (held.status, held.attempts) == ("queued", 0)
    assert held.next_attempt_at == in_vietnam(evening.date() + dt.timedelta(days=1), 7)
    assert fake_zalo.sends() == [] and dispatch.stats["zalo", "deferred"] == 1


async def test_two_dispatchers_racing_send_each_message_once(private_database, channels, fake_zalo):
    messages = [asking() for _ in range(24)]
    await queue(private_database, *messages)
    second = Database(private_database.url)
    try:
        one = channel_dispatcher(private_database, channels, batch_size=5)
        two = channel_dispatcher(second, channels, batch_size=5)
        while sum(await asyncio.gather(one.run_once(), two.run_once())):
            pass
    finally:
        await second.dispose()
    tracking = [body["tracking_id"] for body in fake_zalo.delivered]
    assert sorted(tracking) == sorted(f"{m.key}@zalo" for m in messages)  # each once
    assert one.stats["zalo", "sent"] + two.stats["zalo", "sent"] == 24
    assert one.stats["zalo", "sent"] > 0 and two.stats["zalo", "sent"] > 0


async def test_a_dispatcher_killed_after_esms_took_a_message_does_not_send_it_twice(
    private_database, channels, fake_esms
):
    message = asking()
    await queue(private_database, message)
    only_sms = {"sms": channels["sms"]}
    await channel_dispatcher(private_database, only_sms).run_once()  # zalo is off: on to SMS
    killed = channel_dispatcher(private_database, only_sms)
    now = utcnow()
    [claimed], lease = await killed.claim(now)
    delivery = await killed.deliver(claimed, now=now, deadline=time.monotonic() + 30)
    assert delivery.sent  # eSMS took it; the dispatcher dies before recording it
    after = channel_dispatcher(private_database, only_sms)
    assert await after.run_once(now=lease + dt.timedelta(seconds=1)) == 1  # its lease ran out
    assert [body["RequestId"] for body in fake_esms.sends()] == [claimed.idempotency_key] * 2
    assert len(fake_esms.delivered) == 1  # eSMS refused the second as a duplicate RequestId
    _, sms = await rows(private_database, message)
    assert (sms.status, sms.attempts) == ("sent", 2) and "duplicate" in (sms.last_error or "")


async def test_the_email_goes_alongside(private_database, channels, fake_zalo, smtp_server):
    message = asking()
    await queue(private_database, message)
    await channel_dispatcher(private_database, channels).run_once()
    await dispatcher(private_database, smtp_server.port).run_once()
    email = smtp_server.wait_for(lambda received: link_for(message.link_argument) in received.text)
    assert email.envelope_to == [HANH[1]]
    assert [body["tracking_id"] for body in fake_zalo.delivered] == [f"{message.key}@zalo"]


async def test_an_official_who_has_not_agreed_gets_the_email_only(private_database, channels):
    message = asking(to=TU)
    assert await queue(private_database, message) == (1, 0)
    assert await rows(private_database, message) == []
    overdue = PlainMessage(
        kind="step_overdue",
        key=f"step_overdue:{uuid.uuid4().hex}",
        language="vi",
        name="Nông Thị Hạnh",
        email=HANH[1],
        context={**CONTEXT, "count": "2", "units": []},
    )
    async with private_database.transaction() as session:  # an overdue notice names its official by address
        assert await queue_phone_messages(session, PLAN, [overdue], on=ON) == 1


async def test_only_the_channels_the_deployment_turned_on_are_queued(private_database):
    sms_only, none = asking(), asking()
    async with private_database.transaction() as session:
        assert await queue_phone_messages(session, PLAN, [sms_only], on=("sms",), link=APPROVAL_LINK) == 1
        assert await queue_phone_messages(session, PLAN, [none], on=(), link=APPROVAL_LINK) == 0
    [row] = await rows(private_database, sms_only)
    assert (row.channel, row.idempotency_key, row.fallbacks) == ("sms", f"{sms_only.key}@sms", [])
    assert await rows(private_database, none) == []


async def test_an_sms_carries_a_short_link_to_the_officials_own_link(private_database, channels, fake_esms):
    """A real approval link (its 43-character token) would take the SMS past two segments: the
    SMS carries the official's short link, made as it is sent, which opens that very link."""
    secret = b"s" * 32

    def real_link(argument: str) -> str:
        return f"https://kehoach.ubnd.langson.gov.vn/a/{argument.replace(':', '')[:43].ljust(43, 'x')}"

    message = asking()
    await queue(private_database, message)
    dispatch = ChannelDispatcher(
        private_database,
        {"sms": channels["sms"]},
        resolvers={APPROVAL_LINK: real_link},
        retry=FAST_RETRY,
        short_links=ShortLinks(secret, dt.timedelta(days=7)),
    )
    await dispatch.run_once()  # Zalo is off here: it fails as channel-off and falls back to SMS
    await dispatch.run_once()
    [delivered] = fake_esms.delivered
    text = delivered["Content"]
    code = text.rsplit(SHORT_PATH, 1)[1]
    assert text.endswith(f"https://kehoach.ubnd.langson.gov.vn{SHORT_PATH}{code}") and len(code) == CODE_LENGTH
    assert sms_segments(text) <= MAX_SMS_SEGMENTS, text
    async with private_database.reads() as session:
        target = await short_link_target(session, code, secret=secret, now=utcnow())
    assert target == real_link(message.link_argument)
