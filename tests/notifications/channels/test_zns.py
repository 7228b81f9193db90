"""The ZNS adapter against the fake Zalo: what reaches Zalo, and how each answer is read."""

from __future__ import annotations

import pytest

from notifications.channels.base import ChannelMessage, DeliveryStatus
from notifications.channels.zns import ZnsChannel

TEMPLATES = {"approval_request": "231001", "reminder": "231002"}
VALUES = {
    "name": "Nông Thị Hạnh",
    "title": "Giám đốc",
    "stage": "3. Phê duyệt kế hoạch",
    "agency": "Sở Khoa học và Công nghệ",
    "due": "17:00 ngày 29/11/2026 (giờ Việt Nam)",
    "link": "https://kehoach.example/a/abc.1.sig",
    "cycle": "Kế hoạch năm 2027",
}


def message(key: str, *, kind: str = "approval_request", phone: str = "0912 345 678") -> ChannelMessage:
    return ChannelMessage(recipient=phone, kind=kind, params=VALUES, idempotency_key=key)


@pytest.fixture
async def zns(zalo_app):
    await zalo_app.authorise()
    tokens = zalo_app.tokens()
    channel = ZnsChannel(tokens, template_ids=TEMPLATES, base_url=zalo_app.fake.base_url, timeout=1.0)
    yield channel
    await channel.aclose()
    await tokens.aclose()


async def test_a_message_is_sent_with_its_key_as_tracking_id(zns, zalo_app):
    delivery = await zns.send(message("approval_request:a1:1"))
    assert delivery.status is DeliveryStatus.sent and delivery.provider_id.startswith("zns-")
    [sent] = zalo_app.fake.delivered
    assert sent["phone"] == "84912345678" and sent["template_id"] == "231001"
    assert sent["tracking_id"] == "approval_request:a1:1"
    assert sent["template_data"]["ten_can_bo"] == "Nông Thị Hạnh"
    assert sent["template_data"]["duong_dan"] == VALUES["link"]  # in the button's parameter
    [(_, headers, _)] = [r for r in zalo_app.fake.requests if r[0] == "/message/template"]
    assert headers["access_token"] == zalo_app.access_token
    assert delivery.extra["remaining_quota"] == "499"


async def test_a_provider_that_times_out_is_retried_later(zns, zalo_app):
    zalo_app.fake.hang()
    try:
        delivery = await zns.send(message("k-timeout"))
    finally:
        zalo_app.fake.release()
    assert delivery.status is DeliveryStatus.retryable and delivery.error_code == "timeout"


@pytest.mark.parametrize("status", [500, 503])
async def test_a_5xx_is_retried_later(zns, zalo_app, status):
    zalo_app.fake.fail_with(status)
    delivery = await zns.send(message("k-5xx"))
    assert delivery.status is DeliveryStatus.retryable and delivery.error_code == f"http-{status}"
    assert zalo_app.fake.delivered == []


async def test_a_refused_template_is_permanent(zns, zalo_app):
    zalo_app.fake.refuse_template("231001")
    delivery = await zns.send(message("k-refused"))
    assert delivery.status is DeliveryStatus.permanent and delivery.error_code == "-131"
    assert "Template not approved" in delivery.detail


async def test_no_zalo_account_or_no_template_is_permanent(zns, zalo_app):
    zalo_app.fake.no_zalo.add("84912345678")
    assert (await zns.send(message("k-nozalo"))).error_code == "-118"
    no_template = await zns.send(message("k-none", kind="escalation"))
    assert no_template.status is DeliveryStatus.permanent and no_template.error_code == "no-template"
    not_a_phone = await zns.send(message("k-phone", phone="hanh@lang-son.example"))
    assert not_a_phone.status is DeliveryStatus.permanent and not_a_phone.error_code == "phone"
    assert len(zalo_app.fake.sends()) == 1  # only the first reached Zalo


async def test_a_duplicate_tracking_id_is_delivered_once(zns, zalo_app):
    zalo_app.fake.deduplicate = True
    first = await zns.send(message("k-dup"))
    second = await zns.send(message("k-dup"))
    assert first.sent and second.sent and first.provider_id == second.provider_id
    assert len(zalo_app.fake.sends()) == 2 and len(zalo_app.fake.delivered) == 1


async def test_an_access_token_zalo_stopped_taking_is_refreshed_and_the_send_tried_again(zns, zalo_app):
    zalo_app.fake.expire_access_tokens()  # revoked before its time: -124
    delivery = await zns.send(message("k-expired"))
    assert delivery.sent
    assert len(zalo_app.fake.refreshes()) == 1 and len(zalo_app.fake.delivered) == 1
    assert (await zalo_app.row()).access_token != zalo_app.access_token


async def test_a_token_that_cannot_be_refreshed_sends_the_message_elsewhere(zns, zalo_app):
    zalo_app.fake.expire_access_tokens()
    assert zalo_app.fake.spend(zalo_app.refresh_token) is not None  # spent, and nobody stored the new one
    zns.tokens.grace = 0.2
    delivery = await zns.send(message("k-dead"))
    assert delivery.status is DeliveryStatus.permanent and delivery.error_code == "token"
    assert len(zalo_app.told) == 1 and zalo_app.fake.delivered == []
