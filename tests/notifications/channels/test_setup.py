"""The channels made from the settings: none when off, a clear error when on without their secrets,
and a made channel that sends through the providers the settings name (the fakes here)."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from approvals.config import Settings
from notifications.channels.base import ChannelMessage
from notifications.channels.setup import ChannelNotConfigured, sms_channel, zalo_channel
from notifications.channels.zalo_token import store_tokens
from notifications.models import ZaloToken
from tests.support.fake_esms import API_KEY, BRANDNAME, SECRET_KEY
from tests.support.fake_zns import APP_ID
from tests.support.fake_zns import SECRET_KEY as ZALO_SECRET


def test_channels_off_are_none_and_on_without_secrets_refused(tmp_path, database):
    off = Settings(data_dir=tmp_path)
    assert zalo_channel(off, database) is None and sms_channel(off) is None
    with pytest.raises(ChannelNotConfigured, match="KEHOACH_ZALO_SECRET_KEY"):
        zalo_channel(Settings(data_dir=tmp_path, zalo_enabled=True, zalo_app_id="x"), database)
    with pytest.raises(ChannelNotConfigured, match="KEHOACH_ESMS_BRANDNAME"):
        sms_channel(Settings(data_dir=tmp_path, sms_enabled=True, esms_api_key="k", esms_secret_key="s"))


async def test_channels_made_from_the_settings_send_where_they_say(tmp_path, database, fake_zalo, fake_esms):
    settings = Settings(
        data_dir=tmp_path,
        zalo_enabled=True,
        zalo_app_id=APP_ID,
        zalo_secret_key=ZALO_SECRET,
        zns_templates={"reminder": "231777"},
        zns_base_url=fake_zalo.base_url,
        zalo_oauth_url=fake_zalo.base_url,
        sms_enabled=True,
        esms_api_key=API_KEY,
        esms_secret_key=SECRET_KEY,
        esms_brandname=BRANDNAME,
        esms_base_url=fake_esms.base_url,
    )
    access, refresh = fake_zalo.issue_tokens()
    await store_tokens(database, APP_ID, access_token=access, refresh_token=refresh)
    zalo, sms = zalo_channel(settings, database), sms_channel(settings)
    assert zalo is not None and sms is not None
    reminder = ChannelMessage(
        recipient="0912345678", kind="reminder", params={"due": "17:00", "link": "https://x/a/1"}, idempotency_key="k1"
    )
    try:
        assert (await zalo.send(reminder)).sent and (await sms.send(reminder)).sent
    finally:
        await zalo.aclose()
        await zalo.tokens.aclose()
        await sms.aclose()
        async with database.transaction() as session:
            await session.execute(delete(ZaloToken).where(ZaloToken.app_id == APP_ID))
    assert [m["template_id"] for m in fake_zalo.delivered] == ["231777"]
    assert fake_esms.delivered == [] and len(fake_esms.sandboxed) == 1  # eSMS's sandbox until turned off
