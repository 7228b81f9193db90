"""Email as a channel: the kind's email rendered and sent over the dispatcher's SMTP, its
answer read as a Delivery (against the tests' recording SMTP server)."""

from __future__ import annotations

import pytest

from notifications.channels.base import ChannelMessage, DeliveryStatus
from notifications.channels.email import EmailChannel
from notifications.render import shared_renderer
from tests.notifications.helpers import DOMAIN, dispatcher
from tests.support.smtp import RecordingSmtpServer

VALUES = {
    "title": "Giám đốc",
    "name": "Nông Thị Hạnh",
    "cycle": "Kế hoạch năm 2027",
    "stage": "3. Phê duyệt kế hoạch",
    "agency": "Sở Khoa học và Công nghệ",
    "due": "17:00 ngày 29/11/2026 (giờ Việt Nam)",
    "summary": "",
    "link": "https://kehoach.example/a/abc.1.sig",
    "problem": "",
}


@pytest.fixture
async def email(database, smtp_server: RecordingSmtpServer):
    with smtp_server.lock:
        smtp_server.replies.clear()
    sender = dispatcher(database, smtp_server.port)
    yield EmailChannel(sender, shared_renderer(), domain=DOMAIN)
    await sender.aclose()
    with smtp_server.lock:
        smtp_server.replies.clear()


def message(key: str, address: str = "hanh.nt@lang-son.example") -> ChannelMessage:
    return ChannelMessage(recipient=address, kind="approval_request", params=VALUES, idempotency_key=key)


async def test_an_email_is_sent_with_a_message_id_made_from_its_key(email, smtp_server, keys):
    key = keys()
    delivery = await email.send(message(key))
    assert delivery.sent and delivery.provider_id == email.message_id(key)
    received = smtp_server.wait_for(lambda r: r.message["Message-ID"] == delivery.provider_id)
    assert received.envelope_to == ["hanh.nt@lang-son.example"]
    assert VALUES["link"] in received.text and VALUES["stage"] in received.text
    assert email.message_id(key) == email.message_id(key) != email.message_id(keys())


async def test_a_4xx_is_retryable_and_a_5xx_permanent(email, smtp_server, keys):
    smtp_server.fail_next("451 4.3.0 try again later")
    later = await email.send(message(keys()))
    assert later.status is DeliveryStatus.retryable and later.error_code == "451"
    smtp_server.fail_next("554 5.7.1 refused")
    never = await email.send(message(keys()))
    assert never.status is DeliveryStatus.permanent and never.error_code == "554"


async def test_a_non_ascii_address_is_permanent(email, keys):
    refused = await email.send(message(keys(), address="hạnh@lang-son.example"))
    assert refused.status is DeliveryStatus.permanent and "ASCII" in refused.detail


async def test_an_unreachable_server_is_retryable(database, keys):
    from service.prefect_server import free_port

    sender = dispatcher(database, free_port())  # nothing listens there
    try:
        delivery = await EmailChannel(sender, shared_renderer(), domain=DOMAIN).send(message(keys()))
    finally:
        await sender.aclose()
    assert delivery.status is DeliveryStatus.retryable and delivery.error_code == "unavailable"
