"""The Zalo and SMS dispatcher `kehoach dispatch` runs (service/wiring.py), made from the
settings: the channels they turn on, the links written by the same resolvers as the emails',
and `Emails` queueing only on the channels turned on."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select

from approvals.config import Settings
from approvals.db import utcnow
from approvals.routing import steps
from approvals.tokens import APPROVAL_LINK
from notifications.channel_outbox import queue_phone_messages
from notifications.channels.zalo_token import store_tokens
from notifications.emails import Emails
from notifications.models import ChannelOutboxMessage, OutboxMessage
from notifications.render import Renderer
from service.wiring import make_channel_dispatcher, make_dispatcher
from tests.notifications.channels.test_channel_outbox import MINIMAL, NOT_YET, PLAN, REACHED, TITLE, asking, rows
from tests.support.fake_esms import API_KEY, BRANDNAME, SECRET_KEY
from tests.support.fake_zns import APP_ID
from tests.support.fake_zns import SECRET_KEY as ZALO_SECRET

PUBLIC = "https://kehoach.lang-son.example"


def settings_for(tmp_path, fake_zalo, fake_esms, **overrides) -> Settings:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(MINIMAL.replace(TITLE, TITLE + REACHED + NOT_YET), encoding="utf-8")
    values = dict(
        data_dir=tmp_path,
        plan_file=plan_file,
        public_base_url=PUBLIC,
        link_secret="a-link-secret-of-at-least-32-characters!",
        zalo_enabled=True,
        zalo_app_id=APP_ID,
        zalo_secret_key=ZALO_SECRET,
        zns_templates={"approval_request": "231001"},
        zns_base_url=fake_zalo.base_url,
        zalo_oauth_url=fake_zalo.base_url,
        sms_enabled=True,
        esms_api_key=API_KEY,
        esms_secret_key=SECRET_KEY,
        esms_brandname=BRANDNAME,
        esms_base_url=fake_esms.base_url,
    )
    return Settings(**(values | overrides))


def test_emails_queue_on_the_phone_channels_the_settings_turn_on(tmp_path, fake_zalo, fake_esms):
    both = settings_for(tmp_path, fake_zalo, fake_esms)
    sms_only = settings_for(tmp_path, fake_zalo, fake_esms, zalo_enabled=False)
    off = Settings(data_dir=tmp_path)
    assert Emails.of(PLAN, both, Renderer()).phone_channels == {"zalo", "sms"}
    assert Emails.of(PLAN, sms_only, Renderer()).phone_channels == {"sms"}
    assert Emails.of(PLAN, off, Renderer()).phone_channels == frozenset()


async def test_the_dispatcher_kehoach_runs_sends_the_signed_link_on_zalo(
    tmp_path, private_database, fake_zalo, fake_esms
):
    settings = settings_for(tmp_path, fake_zalo, fake_esms)
    access, refresh = fake_zalo.issue_tokens()
    await store_tokens(private_database, APP_ID, access_token=access, refresh_token=refresh)
    message = asking()
    emails = Emails.of(PLAN, settings, Renderer())
    async with private_database.transaction() as session:
        await queue_phone_messages(session, PLAN, [message], on=emails.phone_channels, link=APPROVAL_LINK)
    phones = make_channel_dispatcher(settings, private_database)
    try:
        assert sorted(phones.channels) == ["sms", "zalo"]
        assert await phones.run_once() == 1
    finally:
        await phones.aclose()
    [sent] = fake_zalo.delivered
    link = sent["template_data"]["duong_dan"]
    assert link.startswith(f"{PUBLIC}/a/") and "[[secret" not in link  # written as it is sent, signed
    [row] = await rows(private_database, message)
    assert (row.status, row.channel) == ("sent", "zalo")


async def test_a_step_opened_asks_its_approver_on_zalo_and_by_email_with_the_same_link(
    tmp_path, private_database, fake_zalo, fake_esms, smtp_server
):
    """Through `Emails.approval_links`, as a run opens a step: the request email and its Zalo
    message, queued together once, each sent by the dispatcher `kehoach dispatch` runs."""
    settings = settings_for(tmp_path, fake_zalo, fake_esms, smtp_port=smtp_server.port)
    access, refresh = fake_zalo.issue_tokens()
    await store_tokens(private_database, APP_ID, access_token=access, refresh_token=refresh)
    emails = Emails.of(PLAN, settings, Renderer())
    async with private_database.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="annual", period=f"r-{uuid.uuid4().hex[:10]}", starts_on=dt.date(2026, 1, 15)
        )
        opened = await steps.open_request(
            session,
            plan=PLAN,
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id="direction",
            subject="",
            waiter_ref=None,
            link_ttl=dt.timedelta(days=30),
            now=utcnow(),
        )
        # both hold the role: the director (Zalo) and the deputy (no consent yet: email only)
        assert await emails.approval_links(session, opened.request, cycle, opened.new_assignments) == 2
        assert await emails.approval_links(session, opened.request, cycle, opened.new_assignments) == 0
    async with private_database.reads() as session:
        email_keys = set((await session.execute(select(OutboxMessage.idempotency_key))).scalars())
        [phone] = (await session.execute(select(ChannelOutboxMessage))).scalars()
    assert (phone.channel, phone.official_id) == ("zalo", "dost_director") and phone.email_key in email_keys
    assert await make_dispatcher(settings, private_database).run_once() == 2
    phones = make_channel_dispatcher(settings, private_database)
    try:
        assert await phones.run_once() == 1
    finally:
        await phones.aclose()
    [sent] = fake_zalo.delivered
    link = sent["template_data"]["duong_dan"]
    email = smtp_server.wait_for(lambda received: link in received.text, timeout=10)
    assert email.envelope_to == ["giamdoc@dost.example"] and sent["tracking_id"] == f"{phone.email_key}@zalo"
