"""Delivery reports (notifications/delivery_reports.py): after the provider took a Zalo or SMS
message, it is asked whether the message reached the phone, against the fakes' documented
status calls (ZNS `GET /message/status`, eSMS `GetSmsReceiverStatus_get`), on each backend.

What it shows: a delivered message is recorded with the provider's time and nothing more is
sent; no report within the window falls back to the next channel, as does an SMS the network
could not deliver; a provider down or hung when asked is asked again and the window still
closes; an access token Zalo stopped taking is refreshed; a sandboxed SMS awaits no report;
two checkers racing ask about each message once."""

from __future__ import annotations

import asyncio
import datetime as dt

from notifications.channels.esms import EsmsGateway
from notifications.channels.sms import SmsChannel
from notifications.delivery_reports import ReportPolicy
from tests.notifications.channels.test_channel_outbox import asking, channel_dispatcher, queue, rows
from tests.support.fake_esms import API_KEY, BRANDNAME, SECRET_KEY

PHONE = "84912345678"  # the official's phone (tests/notifications/channels/test_channel_outbox.py's plan)
WINDOW = ReportPolicy(every=dt.timedelta(minutes=1), within=dt.timedelta(minutes=30))
ZALO_DELIVERED_AT = dt.datetime.fromtimestamp(1765080060, tz=dt.UTC)  # the fake's delivery_time


async def sent_on_zalo(database, channels, **options):
    """A request queued and sent on Zalo: (its message, the dispatcher, the Zalo row)."""
    message = asking()
    await queue(database, message)
    dispatch = channel_dispatcher(database, channels, reports=options.pop("reports", WINDOW), **options)
    assert await dispatch.run_once() == 1
    [zalo] = await rows(database, message)
    assert zalo.status == "sent" and zalo.delivery is None
    return message, dispatch, zalo


async def test_a_delivered_message_is_recorded_and_nothing_more_is_sent(private_database, channels, fake_zalo):
    message, dispatch, zalo = await sent_on_zalo(private_database, channels)
    assert zalo.report_due_at == zalo.sent_at + WINDOW.every
    assert await dispatch.reports.check_once(now=zalo.sent_at) == 0  # not asked before it is due
    assert await dispatch.reports.check_once(now=zalo.report_due_at) == 1
    [zalo] = await rows(private_database, message)
    assert (zalo.delivery, zalo.delivered_at, zalo.report_due_at) == ("delivered", ZALO_DELIVERED_AT, None)
    assert fake_zalo.status_asks() == [{"message_id": zalo.provider_id, "phone": PHONE}]
    assert dispatch.stats["zalo", "delivered"] == 1
    assert await dispatch.reports.check_once(now=zalo.sent_at + WINDOW.within * 2) == 0  # never asked again
    assert await dispatch.run_once(now=zalo.sent_at + WINDOW.within * 2) == 0  # no fallback queued


async def test_no_report_within_the_window_falls_back_to_sms(private_database, channels, fake_zalo, fake_esms):
    fake_zalo.unreached.add(PHONE)
    message, dispatch, zalo = await sent_on_zalo(private_database, channels)
    await dispatch.reports.check_once(now=zalo.report_due_at)
    [zalo] = await rows(private_database, message)
    assert (zalo.delivery, zalo.report_due_at) == (None, zalo.sent_at + 2 * WINDOW.every)  # asked again later
    closes = zalo.sent_at + WINDOW.within
    assert await dispatch.reports.check_once(now=closes - dt.timedelta(seconds=1)) == 1
    [zalo] = await rows(private_database, message)
    assert zalo.report_due_at == closes  # the last look is when the window closes, not after
    assert await dispatch.reports.check_once(now=closes) == 1
    zalo, sms = await rows(private_database, message)
    assert (zalo.status, zalo.delivery, zalo.error_code) == ("sent", "unconfirmed", "unconfirmed")
    assert "no delivery report within 30 min" in zalo.last_error
    assert zalo.fallback_key == sms.idempotency_key == f"{message.key}@sms" and sms.status == "queued"
    assert await dispatch.run_once(now=closes) == 1
    [sent] = fake_esms.delivered
    assert sent["RequestId"] == sms.idempotency_key
    assert dispatch.stats["zalo", "unconfirmed"] == 1 and dispatch.stats["sms", "sent"] == 1


async def test_an_sms_the_network_could_not_deliver_is_recorded_past_the_last_phone_channel(
    private_database, channels, fake_esms
):
    """Zalo is not turned on, so the SMS goes; the network gives up on it. SMS was the last phone
    channel: it is recorded, nothing more is queued (the email, queued with it, remains)."""
    fake_esms.undelivered.add(PHONE)
    message = asking()
    await queue(private_database, message)
    dispatch = channel_dispatcher(private_database, {"sms": channels["sms"]}, reports=WINDOW)
    await dispatch.run_once()  # zalo: channel-off, on to SMS
    await dispatch.run_once()
    _, sms = await rows(private_database, message)
    assert sms.status == "sent" and sms.report_due_at is not None
    assert await dispatch.reports.check_once(now=sms.report_due_at) == 1
    _, sms = await rows(private_database, message)
    assert (sms.delivery, sms.error_code, sms.fallback_key) == ("undelivered", "undelivered", None)
    assert "Viettel did not deliver it" in sms.last_error
    assert fake_esms.status_asks()[0]["RefId"] == sms.provider_id
    assert len(await rows(private_database, message)) == 2
    assert dispatch.stats["sms", "undelivered"] == 1


async def test_an_sms_not_yet_sent_on_by_the_network_is_asked_again(private_database, channels, fake_esms):
    fake_esms.in_network.add(PHONE)
    message = asking()
    await queue(private_database, message)
    dispatch = channel_dispatcher(private_database, {"sms": channels["sms"]}, reports=WINDOW)
    await dispatch.run_once()
    await dispatch.run_once()
    _, sms = await rows(private_database, message)
    await dispatch.reports.check_once(now=sms.report_due_at)
    _, sms = await rows(private_database, message)
    assert (sms.delivery, sms.report_due_at) == (None, sms.sent_at + 2 * WINDOW.every)
    fake_esms.in_network.clear()
    await dispatch.reports.check_once(now=sms.report_due_at)
    _, sms = await rows(private_database, message)
    assert sms.delivery == "delivered" and sms.delivered_at == sms.sent_at + 2 * WINDOW.every  # when we heard


async def test_a_provider_down_or_hung_when_asked_is_asked_again_and_the_window_still_closes(
    private_database, channels, fake_zalo
):
    quick = ReportPolicy(every=dt.timedelta(seconds=8), within=dt.timedelta(seconds=20))
    message, dispatch, zalo = await sent_on_zalo(private_database, channels, reports=quick)
    fake_zalo.fail_with(503)
    await dispatch.reports.check_once(now=zalo.report_due_at)
    fake_zalo.fail_with(None)
    [zalo] = await rows(private_database, message)
    assert (zalo.delivery, zalo.report_due_at) == (None, zalo.sent_at + 2 * quick.every)
    fake_zalo.hang()
    try:
        await dispatch.reports.check_once(now=zalo.sent_at + quick.within)
    finally:
        fake_zalo.release()
    zalo, sms = await rows(private_database, message)
    assert (zalo.delivery, sms.channel, sms.status) == ("unconfirmed", "sms", "queued")
    # the adapter's timeout (3 s here) or the checker's bound (half of `every`), whichever comes first
    assert "(last: ZNS: ReadTimeout" in zalo.last_error or "did not answer about the message" in zalo.last_error


async def test_an_access_token_zalo_stopped_taking_is_refreshed_to_ask(private_database, channels, fake_zalo):
    message, dispatch, zalo = await sent_on_zalo(private_database, channels)
    fake_zalo.expire_access_tokens()
    await dispatch.reports.check_once(now=zalo.report_due_at)
    [zalo] = await rows(private_database, message)
    assert zalo.delivery == "delivered"
    assert len(fake_zalo.refreshes()) == 1 and len(fake_zalo.status_asks()) == 2


async def test_a_sandboxed_sms_awaits_no_report(private_database, fake_esms):
    gateway = EsmsGateway(
        api_key=API_KEY, secret_key=SECRET_KEY, brandname=BRANDNAME, base_url=fake_esms.base_url, sandbox=True
    )
    message = asking()
    await queue(private_database, message)
    dispatch = channel_dispatcher(private_database, {"sms": SmsChannel(gateway)}, reports=WINDOW)
    try:
        await dispatch.run_once()
        await dispatch.run_once()
    finally:
        await gateway.aclose()
    _, sms = await rows(private_database, message)
    assert (sms.status, sms.report_due_at, len(fake_esms.sandboxed)) == ("sent", None, 1)
    assert await dispatch.reports.check_once(now=sms.sent_at + WINDOW.within * 2) == 0
    assert fake_esms.status_asks() == []


async def test_two_checkers_racing_ask_about_each_message_once(private_database, channels, fake_zalo):
    messages = [asking() for _ in range(6)]
    await queue(private_database, *messages)
    first = channel_dispatcher(private_database, channels, reports=WINDOW)
    second = channel_dispatcher(private_database, channels, reports=WINDOW)
    assert await first.run_once() == 6
    [due] = {row.report_due_at for message in messages for row in await rows(private_database, message)}
    asked = await asyncio.gather(first.reports.check_once(now=due), second.reports.check_once(now=due))
    assert sum(asked) == 6
    assert sorted(ask["message_id"] for ask in fake_zalo.status_asks()) == sorted(fake_zalo.sent_to)
    assert first.stats["zalo", "delivered"] + second.stats["zalo", "delivered"] == 6
    for message in messages:
        [zalo] = await rows(private_database, message)
        assert zalo.delivery == "delivered"
