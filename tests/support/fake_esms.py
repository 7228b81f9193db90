"""A fake of eSMS.vn's SMS API, speaking its documented shape (notifications/channels/esms.py
has the call and its codes), on 127.0.0.1.

`POST /MainService.svc/json/SendMultipleMessage_V4_post_json/` with {ApiKey, SecretKey, Phone,
Content, SmsType, Brandname, IsUnicode, Sandbox, RequestId, CallbackUrl} -> {CodeResult, SMSID,
ErrorMessage}: 100 accepted; 101 wrong keys; 104 a brandname not registered; 108 a bad phone;
124 a RequestId seen before (nothing sent again). A sandbox request is checked, kept in
`sandboxed`, never delivered; the others are kept in `delivered`. `answer_code` makes every
later request answer that CodeResult (None: normal again).

`GET /MainService.svc/json/GetSmsReceiverStatus_get?ApiKey&SecretKey&RefId` -> {CodeResult,
ReceiverList: [{Phone (as dialled, 0...), IsSent, SentResult, NetworkName, Retry}]}: a delivered
SMS is sent and received, unless its phone is in `in_network` (not sent on yet) or `undelivered`
(the network gave up); an unknown RefId answers an empty list.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.fake_http import FakeHttpProvider

API_KEY = "fake-esms-key"
SECRET_KEY = "fake-esms-secret"
BRANDNAME = "UBND LSON"
PATH = "/MainService.svc/json/SendMultipleMessage_V4_post_json/"
STATUS_PATH = "/MainService.svc/json/GetSmsReceiverStatus_get"


class FakeEsms(FakeHttpProvider):
    name = "fake-esms"

    def __init__(self) -> None:
        super().__init__()
        self.delivered: list[dict[str, Any]] = []
        self.sandboxed: list[dict[str, Any]] = []
        self.request_ids: set[str] = set()
        self.forced: str | None = None
        self.by_sms_id: dict[str, str] = {}  # SMSID -> phone
        self.in_network: set[str] = set()
        self.undelivered: set[str] = set()
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"{self.root}/MainService.svc/json"

    def answer_code(self, code: str | None) -> None:
        with self.lock:
            self.forced = code

    def sends(self) -> list[dict[str, Any]]:
        with self.lock:
            return [body for path, _, body in self.requests if path == PATH]

    def status_asks(self) -> list[dict[str, Any]]:
        with self.lock:
            return [query for path, _, query in self.requests if path == STATUS_PATH]

    def route(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path not in (PATH, STATUS_PATH):
            return 404, {"CodeResult": "404", "ErrorMessage": "Not found"}
        with self.lock:
            return 200, self._send(body) if path == PATH else self._status(body)

    def _status(self, query: dict[str, Any]) -> dict[str, Any]:
        if query.get("ApiKey") != API_KEY or query.get("SecretKey") != SECRET_KEY:
            return {"CodeResult": "101", "ErrorMessage": "Authorize Failed"}
        phone = self.by_sms_id.get(str(query.get("RefId")))
        if phone is None:
            return {"CodeResult": "100", "ReceiverList": []}
        sent, received = phone not in self.in_network, phone not in self.undelivered
        receiver = {"Phone": "0" + phone[2:], "IsSent": sent, "SentResult": sent and received, "Retry": 0}
        return {"CodeResult": "100", "ReceiverList": [{**receiver, "NetworkName": "Viettel"}]}

    def _send(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.forced is not None:
            return {"CodeResult": self.forced, "ErrorMessage": f"forced {self.forced}"}
        if body.get("ApiKey") != API_KEY or body.get("SecretKey") != SECRET_KEY:
            return {"CodeResult": "101", "ErrorMessage": "Authorize Failed"}
        if body.get("Brandname") != BRANDNAME:
            return {"CodeResult": "104", "ErrorMessage": "Brandname not exist"}
        phone = str(body.get("Phone", ""))
        if not (phone.startswith("84") and phone.isdigit() and len(phone) == 11):
            return {"CodeResult": "108", "ErrorMessage": "Phone invalid"}
        request_id = str(body.get("RequestId", ""))
        if request_id and request_id in self.request_ids:
            return {"CodeResult": "124", "ErrorMessage": "Duplicate RequestId"}
        self.request_ids.add(request_id)
        (self.sandboxed if str(body.get("Sandbox")) == "1" else self.delivered).append(body)
        sms_id = f"esms-{next(self._ids)}"
        self.by_sms_id[sms_id] = phone
        return {"CodeResult": "100", "SMSID": sms_id, "ErrorMessage": ""}


@pytest.fixture
def fake_esms() -> Iterator[FakeEsms]:
    fake = FakeEsms()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
