"""A fake of Zalo's ZNS send and OA token refresh, speaking their documented shapes
(notifications/channels/zns.py and zalo_token.py have the calls), on 127.0.0.1.

- `POST /message/template` (header access_token) {phone, template_id, template_data,
  tracking_id} -> {error: 0, message, data: {msg_id, sent_time, quota}}; a token it did not issue
  (or one `expire_access_tokens` invalidated) is -124; a template `refuse_template` names is its
  code (-131, template not approved, by default); a phone `no_zalo` names is -118. Delivered
  messages are kept in `delivered`. With `deduplicate` a tracking_id seen before is answered with
  the first send's msg_id and not delivered again.
- `GET /message/status?message_id&phone` (header access_token) -> {error: 0, message, data:
  {delivery_time, message, status}}: status 1 (delivered) for a message it sent, 0 (not yet)
  while its phone is in `unreached`; an unknown message id is -107.
- `POST /v4/oa/access_token` (header secret_key, form refresh_token, app_id, grant_type) ->
  {access_token, refresh_token, expires_in: "90000"}; each refresh token works once: a spent or
  unknown one is invalid_grant ({error: -14014, error_name, error_description}). `before_refresh`
  runs in the server's thread before a refresh is answered (to play another process).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.fake_http import FakeHttpProvider

APP_ID = "kehoach-test-app"
SECRET_KEY = "fake-zalo-secret"


class FakeZalo(FakeHttpProvider):
    name = "fake-zalo"

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[str, str] = {APP_ID: SECRET_KEY}
        self.access_tokens: set[str] = set()
        self.refresh_tokens: dict[str, str] = {}  # token -> "live" or "spent"
        self.refused_templates: dict[str, int] = {}
        self.no_zalo: set[str] = set()
        self.deduplicate = False
        self.delivered: list[dict[str, Any]] = []
        self.by_tracking: dict[str, str] = {}
        self.sent_to: dict[str, str] = {}  # msg_id -> phone
        self.unreached: set[str] = set()  # phones whose messages are never reported delivered
        self.before_refresh: Callable[[str], None] | None = None
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        return self.root

    # -- the test's hands ---------------------------------------------------------------------

    def issue_tokens(self) -> tuple[str, str]:
        """A new (access token, refresh token), as authorising the OA gives them."""
        with self.lock:
            return self._issue()

    def _issue(self) -> tuple[str, str]:
        access, refresh = f"at-{secrets.token_hex(8)}", f"rt-{secrets.token_hex(8)}"
        self.access_tokens.add(access)
        self.refresh_tokens[refresh] = "live"
        return access, refresh

    def spend(self, refresh_token: str) -> tuple[str, str] | None:
        """Refresh as another client would: the new tokens, or None when the token was spent."""
        with self.lock:
            return self._spend(refresh_token)

    def _spend(self, refresh_token: str) -> tuple[str, str] | None:
        if self.refresh_tokens.get(refresh_token) != "live":
            return None
        self.refresh_tokens[refresh_token] = "spent"
        return self._issue()

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def refuse_template(self, template_id: str, code: int = -131) -> None:
        with self.lock:
            self.refused_templates[template_id] = code

    def refreshes(self) -> list[dict[str, Any]]:
        with self.lock:
            return [body for path, _, body in self.requests if path == "/v4/oa/access_token"]

    def sends(self) -> list[dict[str, Any]]:
        with self.lock:
            return [body for path, _, body in self.requests if path == "/message/template"]

    def status_asks(self) -> list[dict[str, Any]]:
        with self.lock:
            return [query for path, _, query in self.requests if path == "/message/status"]

    # -- the provider -------------------------------------------------------------------------

    def route(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if path == "/v4/oa/access_token":
            return self._refresh(headers, body)
        if path == "/message/template":
            with self.lock:
                return 200, self._send(headers, body)
        if path == "/message/status":
            with self.lock:
                return 200, self._status(headers, body)
        return 404, {"error": -106, "message": "Method unsupported"}

    def _refresh(self, headers: dict[str, str], form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        app_id, token = str(form.get("app_id")), str(form.get("refresh_token"))
        if self.before_refresh is not None:
            self.before_refresh(token)
        with self.lock:
            if self.secrets.get(app_id) != headers.get("secret_key") or form.get("grant_type") != "refresh_token":
                return 200, {"error": -14002, "error_name": "Invalid app", "error_description": "app_id or secret_key"}
            issued = self._spend(token)
        if issued is None:
            return 200, {
                "error": -14014,
                "error_name": "invalid_grant",
                "error_description": "Invalid refresh token: expired or already used",
            }
        access, refresh = issued
        return 200, {"access_token": access, "refresh_token": refresh, "expires_in": "90000"}

    def _send(self, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        if headers.get("access_token") not in self.access_tokens:
            return {"error": -124, "message": "Access token invalid"}
        phone, template_id = str(body.get("phone", "")), str(body.get("template_id", ""))
        if not phone.startswith("84") or not phone.isdigit():
            return {"error": -108, "message": "Phone number invalid"}
        if template_id in self.refused_templates:
            code = self.refused_templates[template_id]
            return {"error": code, "message": "Template not approved"}
        if phone in self.no_zalo:
            return {"error": -118, "message": "Zalo account not existed"}
        tracking = str(body.get("tracking_id", ""))
        if self.deduplicate and tracking in self.by_tracking:
            return self._success(self.by_tracking[tracking])
        msg_id = f"zns-{next(self._ids)}"
        self.by_tracking[tracking] = msg_id
        self.sent_to[msg_id] = phone
        self.delivered.append(body)
        return self._success(msg_id)

    def _status(self, headers: dict[str, str], query: dict[str, Any]) -> dict[str, Any]:
        if headers.get("access_token") not in self.access_tokens:
            return {"error": -124, "message": "Access token invalid"}
        phone = self.sent_to.get(str(query.get("message_id")))
        if phone is None or phone != query.get("phone"):
            return {"error": -107, "message": "Message id invalid"}
        if phone in self.unreached:
            return {"error": 0, "message": "Success", "data": {"status": 0, "message": "The message is not delivered"}}
        delivered = {"delivery_time": "1765080060000", "message": "The message was delivered to the user's phone"}
        return {"error": 0, "message": "Success", "data": {**delivered, "status": 1}}

    def _success(self, msg_id: str) -> dict[str, Any]:
        return {
            "error": 0,
            "message": "Success",
            "data": {
                "msg_id": msg_id,
                "sent_time": "1765080000000",
                "quota": {"dailyQuota": "500", "remainingQuota": str(500 - len(self.delivered))},
            },
        }


@pytest.fixture
def fake_zalo() -> Iterator[FakeZalo]:
    fake = FakeZalo()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
