"""SMS as a channel: the kind's text (`channels.yaml`) sent through an SMS gateway.

The gateway is the provider's part, one small class each: eSMS.vn now (`esms.EsmsGateway`);
SpeedSMS or a province's own gateway would be another class with the same `submit`. A text that
would go past two segments is refused here, before any provider is paid for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from notifications.channels.base import ChannelMessage, Delivery, DeliveryReport, ReportState
from notifications.channels.phones import NotAPhone, international
from notifications.channels.segments import sms_segments
from notifications.channels.templates import MAX_SMS_SEGMENTS, KindTemplates, templates_of


class SmsGateway(Protocol):
    """One SMS provider: send `text` to `phone` (84xxxxxxxxx) once per `request_id`."""

    async def submit(self, phone: str, text: str, request_id: str) -> Delivery: ...

    async def report(self, sms_id: str, phone: str) -> DeliveryReport: ...

    async def aclose(self) -> None: ...


class SmsChannel:
    name = "sms"

    def __init__(self, gateway: SmsGateway, *, templates: Mapping[str, KindTemplates] | None = None) -> None:
        self.gateway = gateway
        self.templates = templates

    async def aclose(self) -> None:
        await self.gateway.aclose()

    async def send(self, message: ChannelMessage) -> Delivery:
        try:
            phone = international(message.recipient)
        except NotAPhone as error:
            return Delivery.refused("phone", str(error))
        text = templates_of(message.kind, self.templates).sms_text(message.params)
        if sms_segments(text) > MAX_SMS_SEGMENTS:
            return Delivery.refused("too-long", f"the SMS takes {sms_segments(text)} segments: {text!r}")
        return await self.gateway.submit(phone, text, message.idempotency_key)

    async def report(self, provider_id: str, recipient: str) -> DeliveryReport:
        try:
            phone = international(recipient)
        except NotAPhone as error:
            return DeliveryReport(ReportState.undelivered, error_code="phone", detail=str(error))
        return await self.gateway.report(provider_id, phone)
