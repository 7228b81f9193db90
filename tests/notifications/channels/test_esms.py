"""The SMS channel through eSMS.vn, against the fake eSMS: the text, the RequestId, the sandbox,
and how each CodeResult is read."""

from __future__ import annotations

import pytest

from notifications.channels.base import ChannelMessage, DeliveryStatus
from notifications.channels.esms import EsmsGateway
from notifications.channels.segments import sms_segments
from notifications.channels.sms import SmsChannel
from tests.support.fake_esms import API_KEY, BRANDNAME, SECRET_KEY

VALUES = {
    "name": "Nông Thị Hạnh",
    "due": "17:00 ngày 29/11/2026 (giờ Việt Nam)",
    "link": "https://kehoach.example/a/abc.1.sig-a-long-personal-link-that-an-sms-does-not-carry",
    "short_link": "https://kehoach.example/l/AbCdEfGhIj",
}


def message(key: str, **values: str) -> ChannelMessage:
    return ChannelMessage(
        recipient="+84 912 345 678", kind="approval_request", params={**VALUES, **values}, idempotency_key=key
    )


@pytest.fixture
async def sms(fake_esms):
    """`sms(sandbox=..., brandname=...)`: an SMS channel through the fake eSMS, closed afterwards."""
    made: list[SmsChannel] = []

    def make(*, sandbox: bool = False, brandname: str = BRANDNAME, timeout: float = 1.0) -> SmsChannel:
        gateway = EsmsGateway(
            api_key=API_KEY,
            secret_key=SECRET_KEY,
            brandname=brandname,
            sandbox=sandbox,
            base_url=fake_esms.base_url,
            timeout=timeout,
            callback_url="https://kehoach.example/channels/esms",
        )
        made.append(SmsChannel(gateway))
        return made[-1]

    yield make
    for channel in made:
        await channel.aclose()


async def test_an_sms_is_sent_with_its_key_as_request_id(sms, fake_esms):
    channel = sms()
    delivery = await channel.send(message("approval_request:a1:1"))
    assert delivery.sent and delivery.provider_id == "esms-1"
    [sent] = fake_esms.delivered
    assert sent["RequestId"] == "approval_request:a1:1" and sent["Phone"] == "84912345678"
    assert sent["IsUnicode"] == "1" and sent["SmsType"] == "2" and sent["Brandname"] == BRANDNAME
    assert sent["Content"].endswith(VALUES["short_link"]) and "Đồng chí" in sent["Content"]
    assert sms_segments(sent["Content"]) <= 2
    assert sent["CallbackUrl"] == "https://kehoach.example/channels/esms"


async def test_the_sandbox_sends_nothing(sms, fake_esms):
    delivery = await sms(sandbox=True).send(message("k-sandbox"))
    assert delivery.sent and delivery.detail == "sandbox"
    assert fake_esms.delivered == [] and [s["Sandbox"] for s in fake_esms.sandboxed] == ["1"]


async def test_a_duplicate_request_id_is_sent_once(sms, fake_esms):
    channel = sms()
    first = await channel.send(message("k-dup"))
    again = await channel.send(message("k-dup"))  # a dispatcher that died before recording the first
    assert first.sent and again.sent and "duplicate RequestId" in again.detail
    assert len(fake_esms.sends()) == 2 and len(fake_esms.delivered) == 1


async def test_a_provider_that_times_out_is_retried_later(sms, fake_esms):
    fake_esms.hang()
    try:
        delivery = await sms().send(message("k-timeout"))
    finally:
        fake_esms.release()
    assert delivery.status is DeliveryStatus.retryable and delivery.error_code == "timeout"


async def test_a_5xx_is_retried_later(sms, fake_esms):
    fake_esms.fail_with(503)
    delivery = await sms().send(message("k-5xx"))
    assert delivery.status is DeliveryStatus.retryable and delivery.error_code == "http-503"


@pytest.mark.parametrize(
    ("code", "status"), [("146", "permanent"), ("103", "permanent"), ("99", "permanent"), ("777", "retryable")]
)
async def test_codes_permanent_and_retryable(sms, fake_esms, code, status):
    fake_esms.answer_code(code)
    delivery = await sms().send(message(f"k-{code}"))
    assert delivery.status is DeliveryStatus(status) and delivery.error_code == code


async def test_an_unregistered_brandname_is_permanent(sms, fake_esms):
    delivery = await sms(brandname="UNKNOWN").send(message("k-brand"))
    assert delivery.status is DeliveryStatus.permanent and delivery.error_code == "104"


async def test_a_text_past_two_segments_never_reaches_the_provider(sms, fake_esms):
    delivery = await sms().send(message("k-long", short_link="https://kehoach.example/l/" + "x" * 80))
    assert delivery.status is DeliveryStatus.permanent and delivery.error_code == "too-long"
    assert fake_esms.requests == []
