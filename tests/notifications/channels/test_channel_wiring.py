"""The Zalo and SMS dispatcher `kehoach dispatch` runs (service/wiring.py), made from the
settings: the channels they turn on, the links written by the same resolvers as the emails',
and `Emails` queueing only on the channels turned on."""

from __future__ import annotations

from approvals.config import Settings
from approvals.tokens import APPROVAL_LINK
from notifications.channel_outbox import queue_phone_messages
from notifications.channels.zalo_token import store_tokens
from notifications.emails import Emails
from notifications.render import Renderer
from service.wiring import make_channel_dispatcher
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
