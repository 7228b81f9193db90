"""eSMS.vn's SMS API, as an `sms.SmsGateway`.

The call, as eSMS documents it (developers.esms.vn, "Send OTP/Customer care message"):
    POST https://rest.esms.vn/MainService.svc/json/SendMultipleMessage_V4_post_json/
    {"ApiKey", "SecretKey", "Phone", "Content", "SmsType" ("2": customer care, with a
     Brandname), "Brandname", "IsUnicode" ("1" for Vietnamese with diacritics), "Sandbox"
     ("1": checked, neither sent nor charged), "RequestId" (ours: "to prevent the request
     from being duplicated"), "CallbackUrl" (delivery reports)}
    -> {"CodeResult": "100", "SMSID": "...", "ErrorMessage": ""}
"100" says eSMS accepted the request, not that the phone received it (that is the callback's).

The other CodeResult values (developers.esms.vn "Table of error codes", and the eSMS gitbook
`esms-api/bang-ma-loi.md`):
- 124 duplicate RequestId: this message was accepted before, by an earlier try of ours
  (a dispatcher that died before recording it): sent, not sent again;
- 99 number blocked, 101 wrong ApiKey/SecretKey, 102 no price list, 103 balance too low,
  104 brandname not registered, 108 phone format, 118 unsupported message type, 140 our IP not
  whitelisted, 146 wrong customer-care template, 177 network not registered: permanent (the
  message goes to the next channel; the configuration ones need a person);
- anything else: retryable (bounded by the outbox's attempts). A timeout, a connection error or
  an HTTP 5xx is retryable; another non-200 status, permanent.

Delivery reports, asked by polling (`report`; the gitbook's "Hàm kiểm tra chi tiết từng số
trong tin nhắn", data kept 7 days):
    GET .../GetSmsReceiverStatus_get?ApiKey=...&SecretKey=...&RefId=<SMSID>
    -> {"CodeResult": "100", "ReceiverList": [{"Phone": "0901888484", "IsSent": true,
        "SentResult": true, "NetworkName": "Viettel", "Retry": 0}]}
IsSent false: not sent to the network yet; IsSent with SentResult true: delivered; with
SentResult false: undelivered (the next channel). Any other answer is "not yet". A sandboxed
SMS is never sent, so none is awaited. eSMS can also call a `CallbackUrl` back (GET, retried 5
times); polling needs no address of ours reachable from the internet.
"""

from __future__ import annotations

from typing import Any

import httpx

from notifications.channels.base import Delivery, DeliveryReport, ReportState
from notifications.channels.provider_http import get_json, post_json
from notifications.channels.segments import is_gsm7

ESMS_URL = "https://rest.esms.vn/MainService.svc/json"
SEND_PATH = "/SendMultipleMessage_V4_post_json/"
STATUS_PATH = "/GetSmsReceiverStatus_get"
ACCEPTED = "100"
DUPLICATE = "124"
PERMANENT_CODES = {
    "99": "the phone number is blocked",
    "101": "wrong ApiKey or SecretKey",
    "102": "no price list",
    "103": "balance too low",
    "104": "brandname not registered",
    "108": "phone number format",
    "118": "unsupported message type",
    "140": "our IP address is not whitelisted",
    "146": "wrong customer-care template",
    "177": "the phone's network is not registered",
}


class EsmsGateway:
    def __init__(
        self,
        *,
        api_key: str,
        secret_key: str,
        brandname: str,
        sms_type: str = "2",
        sandbox: bool = True,
        callback_url: str = "",
        base_url: str = ESMS_URL,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._credentials = {"ApiKey": api_key, "SecretKey": secret_key}
        self.brandname = brandname
        self.sms_type = sms_type
        self.sandbox = sandbox
        self.callback_url = callback_url
        self.timeout = timeout
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    def body(self, phone: str, text: str, request_id: str) -> dict[str, Any]:
        return {
            **self._credentials,
            "Phone": phone,
            "Content": text,
            "SmsType": self.sms_type,
            "Brandname": self.brandname,
            "IsUnicode": "0" if is_gsm7(text) else "1",
            "Sandbox": "1" if self.sandbox else "0",
            "RequestId": request_id,
            "CallbackUrl": self.callback_url,
        }

    async def submit(self, phone: str, text: str, request_id: str) -> Delivery:
        body = self.body(phone, text, request_id)
        answer = await post_json(self._http, SEND_PATH, provider="eSMS", timeout=self.timeout, json=body)
        if isinstance(answer, Delivery):
            return answer
        code = str(answer.get("CodeResult") or "")
        message = str(answer.get("ErrorMessage") or "")
        sandbox = "sandbox" if self.sandbox else ""
        if code == ACCEPTED:
            return Delivery.delivered(str(answer.get("SMSID") or ""), sandbox, awaits_report=not self.sandbox)
        if code == DUPLICATE:
            return Delivery.delivered(
                str(answer.get("SMSID") or ""), f"accepted before (duplicate RequestId {request_id})"
            )
        if code in PERMANENT_CODES:
            return Delivery.refused(code, f"eSMS {code}: {PERMANENT_CODES[code]} {message}".strip())
        return Delivery.retry(code or "unknown", f"eSMS {code or 'answered no code'}: {message}".strip())

    async def report(self, sms_id: str, phone: str) -> DeliveryReport:
        """Whether the SMS `sms_id` reached `phone` (84xxxxxxxxx; see the module)."""
        answer = await get_json(self._http, STATUS_PATH, provider="eSMS", params={**self._credentials, "RefId": sms_id})
        if isinstance(answer, DeliveryReport):
            return answer
        code = str(answer.get("CodeResult") or "")
        receivers = answer.get("ReceiverList")
        if code != ACCEPTED or not isinstance(receivers, list):
            return DeliveryReport.pending(code, f"eSMS {code}: {answer.get('ErrorMessage') or 'no receiver list'}")
        local = "0" + phone[2:]  # eSMS lists the phone as the official dials it
        receiver = next((r for r in receivers if isinstance(r, dict) and str(r.get("Phone")) in (phone, local)), None)
        if receiver is None or receiver.get("IsSent") is not True:
            return DeliveryReport.pending(detail="not sent to the network yet")
        if receiver.get("SentResult") is True:
            return DeliveryReport(ReportState.delivered)
        network = receiver.get("NetworkName") or "the network"
        return DeliveryReport(ReportState.undelivered, error_code="undelivered", detail=f"{network} did not deliver it")
