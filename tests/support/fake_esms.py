"""A fake of eSMS.vn's SMS API, speaking its documented shape (notifications/channels/esms.py
has the call and its codes), on 127.0.0.1.

`POST /MainService.svc/json/SendMultipleMessage_V4_post_json/` with {ApiKey, SecretKey, Phone,
Content, SmsType, Brandname, IsUnicode, Sandbox, RequestId, CallbackUrl} -> {CodeResult, SMSID,
ErrorMessage}: 100 accepted; 101 wrong keys; 104 a brandname not registered; 108 a bad phone;
124 a RequestId seen before (nothing sent again). A sandbox request is checked, kept in
`sandboxed`, never delivered; the others are kept in `delivered`. `answer_code` makes every
later request answer that CodeResult (None: normal again).
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


class FakeEsms(FakeHttpProvider):
    name = "fake-esms"

    def __init__(self) -> None:
        super().__init__()
        self.delivered: list[dict[str, Any]] = []
        self.sandboxed: list[dict[str, Any]] = []
        self.request_ids: set[str] = set()
        self.forced: str | None = None
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

    def route(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path != PATH:
            return 404, {"CodeResult": "404", "ErrorMessage": "Not found"}
        with self.lock:
            return 200, self._send(body)

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
        return {"CodeResult": "100", "SMSID": f"esms-{next(self._ids)}", "ErrorMessage": ""}


@pytest.fixture
def fake_esms() -> Iterator[FakeEsms]:
    fake = FakeEsms()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
