"""Zalo's notification service (ZNS): a template Zalo approved, filled with parameters, sent
to the Zalo account of a phone number.

The call, as Zalo documents it (developers.zalo.me, ZNS "Gửi thông báo ZNS"):
    POST https://business.openapi.zalo.me/message/template
    header access_token: <the OA's access token>   (notifications.channels.zalo_token)
    {"phone": "84912345678", "template_id": "...", "template_data": {...}, "tracking_id": "..."}
    -> {"error": 0, "message": "Success", "data": {"msg_id": "...", "sent_time": "...",
        "quota": {"dailyQuota": "...", "remainingQuota": "..."}}}
The phone goes in international form without '+'; `tracking_id` is the outbox's idempotency
key (Zalo hands it back in its delivery reports). A template carries no link in its text: the
personal link is its button's URL parameter (`channels.yaml`).

Error codes, from Zalo's table "Cách xử lý mã lỗi" (zalo.cloud/zns/guidelines/handle-error-code,
seen for -100 to -112; the later codes are named in the same table, as copied in order on
helpdesk.getfly.vn "Câu hỏi về ZNS", but their numbers there were not seen: ASSUMED):
- -100 unknown error ("try again later"): retryable;
- -101..-106 the app (invalid, missing, not activated, bad secret, not linked to an OA,
  method): permanent (a configuration a person must fix; the message falls back meanwhile);
- -107 message id, -108 phone number, -109 template id, -110 Zalo version too old,
  -111 template data empty, -112 template data invalid: permanent;
- -114, seen with its text in the eSMS gitbook's callback example (`esms-api/callback-url.md`:
  "User is inactive, or reject the message, or using an outdated Zalo version, or other
  internal errors"): permanent;
- ASSUMED numbers: -113 button invalid, -115 out of quota,
  -116 text invalid, -117 OA has no right to the template, -118 no Zalo account for the
  phone, -119 account cannot receive ZNS, -131 template not approved, -132 parameter invalid:
  permanent; -124 access token invalid: the token is refreshed and the send tried once more,
  then retryable; -133 (a non-transaction message sent at night) and -144 (the OA's daily
  quota spent): retryable, later.
- Any other code: permanent (the message goes to the next channel rather than wait on a
  code nobody can read), its code and message kept for the outbox.
A timeout, a connection error or an HTTP 5xx is retryable; another HTTP status, permanent.

Duplicates: Zalo does not document that a repeated `tracking_id` is refused, so a send is not
assumed idempotent at the provider; the outbox's leases keep a message from being sent twice.

Delivery reports, asked by polling (`report`; nothing public need reach our servers):
    GET https://business.openapi.zalo.me/message/status?message_id=<msg_id>&phone=84...
    header access_token
    -> {"error": 0, "message": "Success", "data": {"delivery_time": "<ms since 1970>",
        "message": "The message was delivered to the user's phone", "status": 1}}
(Zalo's "Lấy thông tin trạng thái ZNS"; eSMS's GetZaloMessageStatus hands back the same data.)
Status 1 is delivered. The other values are not documented where we could read them: any of
them is read as "not yet", and the outbox's report window decides (no report in time: the
next channel). An error code or an unreachable Zalo is "not yet" too, its code kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import httpx

from notifications.channels.base import ChannelMessage, Delivery, DeliveryReport, ReportState
from notifications.channels.phones import NotAPhone, international
from notifications.channels.provider_http import get_json, post_json
from notifications.channels.templates import KindTemplates, templates_of
from notifications.channels.zalo_token import ZaloTokenFailed, ZaloTokens, ZaloTokenUnavailable

ZNS_URL = "https://business.openapi.zalo.me"
SEND_PATH = "/message/template"
STATUS_PATH = "/message/status"
DELIVERED = 1
RETRYABLE_CODES = frozenset({-100, -133, -144})
ACCESS_TOKEN_INVALID = -124


class ZnsChannel:
    """Sends ChannelMessages as ZNS templates; `template_ids` maps a kind to its approved id."""

    name = "zalo"

    def __init__(
        self,
        tokens: ZaloTokens,
        *,
        template_ids: Mapping[str, str],
        base_url: str = ZNS_URL,
        templates: Mapping[str, KindTemplates] | None = None,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.tokens = tokens
        self.template_ids = dict(template_ids)
        self.templates = templates
        self.timeout = timeout
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, message: ChannelMessage) -> Delivery:
        template_id = self.template_ids.get(message.kind)
        if not template_id:
            return Delivery.refused("no-template", f"no approved ZNS template for {message.kind}")
        try:
            phone = international(message.recipient)
        except NotAPhone as error:
            return Delivery.refused("phone", str(error))
        body = {
            "phone": phone,
            "template_id": template_id,
            "template_data": templates_of(message.kind, self.templates).zns_data(message.params),
            "tracking_id": message.idempotency_key,
        }
        try:
            token = await self.tokens.access_token()
            delivery, code = await self._post(token, body)
            if code == ACCESS_TOKEN_INVALID:  # expired early or revoked: a fresh one, once
                delivery, code = await self._post(await self.tokens.refresh(stale=token), body)
        except ZaloTokenUnavailable as error:
            return Delivery.retry("token", str(error))
        except ZaloTokenFailed as error:
            return Delivery.refused("token", str(error))
        return delivery

    async def report(self, provider_id: str, recipient: str) -> DeliveryReport:
        """Whether the message `provider_id` reached `recipient`'s Zalo (see the module)."""
        try:
            phone = international(recipient)
        except NotAPhone as error:
            return DeliveryReport(ReportState.undelivered, error_code="phone", detail=str(error))
        query = {"message_id": provider_id, "phone": phone}
        try:
            token = await self.tokens.access_token()
            answer = await self._status(token, query)
            if isinstance(answer, dict) and _code(answer.get("error")) == ACCESS_TOKEN_INVALID:
                answer = await self._status(await self.tokens.refresh(stale=token), query)
        except (ZaloTokenUnavailable, ZaloTokenFailed) as error:
            return DeliveryReport.pending("token", str(error))
        if isinstance(answer, DeliveryReport):
            return answer
        code, data = _code(answer.get("error")), _mapping(answer.get("data"))
        if code != 0:
            return DeliveryReport.pending(str(code), f"ZNS error {code}: {answer.get('message') or ''}")
        if _code(data.get("status")) != DELIVERED:
            return DeliveryReport.pending(detail=str(data.get("message") or "not delivered yet"))
        return DeliveryReport(ReportState.delivered, at=_from_millis(data.get("delivery_time")))

    async def _status(self, token: str, query: dict[str, str]) -> dict[str, Any] | DeliveryReport:
        """ZNS's answer about one message, or a pending report when it gave none."""
        return await get_json(self._http, STATUS_PATH, provider="ZNS", params=query, headers={"access_token": token})

    async def _post(self, token: str, body: dict[str, Any]) -> tuple[Delivery, int | None]:
        """The delivery, and ZNS's error code when it answered one."""
        headers = {"access_token": token}
        answer = await post_json(
            self._http, SEND_PATH, provider="ZNS", timeout=self.timeout, json=body, headers=headers
        )
        if isinstance(answer, Delivery):
            return answer, None
        code = _code(answer.get("error"))
        text = str(answer.get("message") or "")
        if code == 0:
            data = _mapping(answer.get("data"))
            quota = _mapping(data.get("quota"))
            return Delivery.delivered(
                str(data.get("msg_id") or ""),
                sent_time=str(data.get("sent_time") or ""),
                remaining_quota=str(quota.get("remainingQuota") or ""),
            ), 0
        detail = f"ZNS error {code}: {text}"
        if code in RETRYABLE_CODES or code == ACCESS_TOKEN_INVALID:
            return Delivery.retry(str(code), detail), code
        return Delivery.refused(str(code), detail), code


def _code(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _from_millis(value: object) -> dt.datetime | None:
    """A time ZNS gives in milliseconds since 1970 (None when it gave none)."""
    try:
        return dt.datetime.fromtimestamp(int(str(value)) / 1000, tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
