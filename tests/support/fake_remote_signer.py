"""A fake remote signing provider that speaks SmartCA's HTTP shape (approvals/signing/remote.py has
the calls and where they are documented), on 127.0.0.1: a real HTTP server in a thread.

It holds a test identity per user id and signs a submitted hash with that user's key only when the
test "confirms on the phone" (`confirm`); `refuse` refuses, and a request lapses once the fake's
clock passes `lapse_after` (the clock is the fake's own: `advance` moves it, nothing sleeps). Like
the real service it refuses a duplicate transaction id (400) without asking the phone again. It can
hang past a client's timeout (`hang`, until `release`), be down (`go_down`, `come_back`), or answer
5xx (`fail_with`), as the other fakes of providers do (tests/support/fake_http.py); with
`callback_url` set it POSTs the §3.5 callback when the signer answers.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cryptography.hazmat.primitives.serialization import Encoding

from approvals.signing.test_pki import TestIdentity
from tests.support import local_http
from tests.support.fake_http import FakeHttpProvider

SP_ID = "kehoach-test.apps.smartcaapi.example"
SP_PASSWORD = "fake-provider-secret"
PREFIX = "/sca/sp769"
STATUS_PATH = re.compile(rf"^{PREFIX}/v1/signatures/sign/(?P<tran>[^/]+)/status$")


@dataclass
class Transaction:
    transaction_id: str
    user_id: str
    doc_id: str
    digest: bytes
    description: str
    submitted_at: float
    state: str = "waiting"  # waiting, signed, refused
    signature: bytes | None = None


@dataclass
class _User:
    identity: TestIdentity
    service_type: str
    prompts: list[str] = field(default_factory=list)  # what the phone asked the signer, in order


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class FakeRemoteSigner(FakeHttpProvider):
    name = "fake-remote-signer"

    def __init__(self, *, lapse_after: float = 300.0) -> None:
        super().__init__()
        self.lapse_after = lapse_after
        self.now = 0.0  # the fake's clock, in seconds: `advance` moves it
        self.users: dict[str, _User] = {}
        self.transactions: dict[str, Transaction] = {}
        self.callback_url: str | None = None

    @property
    def base_url(self) -> str:
        return f"{self.root}{PREFIX}"

    def failure_answer(self, status: int) -> dict[str, Any]:
        return {"status_code": 500, "message": "SERVER_INTERNAL_ERROR", "data": None}

    def bad_body_answer(self) -> dict[str, Any]:
        return {"status_code": 400, "message": "BAD_REQUEST", "data": None}

    # -- the people and their phones ---------------------------------------------------------

    def add_user(self, user_id: str, identity: TestIdentity, *, service_type: str = "SMARTCA") -> None:
        with self.lock:
            self.users[user_id] = _User(identity, service_type)

    def prompts(self, user_id: str) -> list[str]:
        """The transaction ids the user's phone asked about, in order."""
        with self.lock:
            return list(self.users[user_id].prompts)

    def signature_requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [body for path, _, body in self.requests if path == f"{PREFIX}/v1/signatures/sign"]

    def wait_for_prompt(self, user_id: str, timeout: float = 30.0) -> Transaction:
        """The first request the user's phone shows, once it arrives."""
        with self.changed:
            if not self.changed.wait_for(lambda: bool(self.users[user_id].prompts), timeout=timeout):
                raise AssertionError(f"the phone of {user_id} was never asked within {timeout} s")
            return self.transactions[self.users[user_id].prompts[0]]

    def wait_for(self, predicate: Callable[[Transaction], bool], timeout: float = 30.0) -> Transaction:
        """The first request the phones showed that `predicate` accepts, once it arrives."""

        def found() -> Transaction | None:
            return next((t for t in self.transactions.values() if predicate(t)), None)

        with self.changed:
            if not self.changed.wait_for(lambda: found() is not None, timeout=timeout):
                raise AssertionError(f"no phone was asked for such a signature within {timeout} s")
            made = found()
            assert made is not None
            return made

    def confirm(self, transaction_id: str) -> None:
        """The signer confirms on the phone: the hash is signed with the user's key."""
        with self.lock:
            tran = self.transactions[transaction_id]
            key = self.users[tran.user_id].identity.key
            tran.signature = key.sign(tran.digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
            tran.state = "signed"
        self._call_back(tran)

    def refuse(self, transaction_id: str) -> None:
        with self.lock:
            tran = self.transactions[transaction_id]
            tran.state = "refused"
        self._call_back(tran)

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds

    def _call_back(self, tran: Transaction) -> None:
        if self.callback_url is None:
            return
        message, files = self._result(tran)
        payload = {
            "sp_id": SP_ID,
            "status_code": 200,
            "message": message,
            "transaction_id": tran.transaction_id,
            "signed_files": files,
        }
        local_http.post(self.callback_url, json=payload)

    # -- the provider ------------------------------------------------------------------------

    def _result(self, tran: Transaction) -> tuple[str, list[dict[str, Any]] | None]:
        if tran.state == "signed" and tran.signature is not None:
            files = [{"doc_id": tran.doc_id, "signature_value": _b64(tran.signature), "timestamp_signature": None}]
            return "SUCCESS", files
        if tran.state == "refused":
            return "REJECTED", None
        if self.now - tran.submitted_at > self.lapse_after:
            return "EXPIRED", None
        return "sig_wait_for_user_confirm", None

    def route(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.changed:  # a waiter on a prompt wakes when one is made
            answer = self._route(path, body)
            self.changed.notify_all()
        return answer

    def _route(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        match = STATUS_PATH.match(path)
        if match:
            tran = self.transactions.get(match["tran"])
            if tran is None:
                return 400, {"status_code": 400, "message": "BAD_REQUEST: transaction not found", "data": None}
            message, files = self._result(tran)
            return 200, {
                "status_code": 200,
                "message": message,
                "data": {"transaction_id": tran.transaction_id, "signatures": files},
            }
        if path not in (f"{PREFIX}/v1/credentials/get_certificate", f"{PREFIX}/v1/signatures/sign"):
            return 404, {"status_code": 404, "message": "NOT_FOUND", "data": None}
        if body.get("sp_id") != SP_ID or body.get("sp_password") != SP_PASSWORD:
            return 401, {"status_code": 401, "message": "SP_CREDENTIAL_INVALID: sp_id or sp_password", "data": None}
        user = self.users.get(str(body.get("user_id")))
        if user is None:
            return 401, {"status_code": 401, "message": "SP_CREDENTIAL_INVALID: user_id not found", "data": None}
        if path.endswith("get_certificate"):
            return 200, {"status_code": 200, "message": "Success", "data": {"user_certificates": [self._cert(user)]}}
        return self._sign(str(body["user_id"]), user, body)

    def _cert(self, user: _User) -> dict[str, Any]:
        cert = user.identity.certificate
        chain = [c.public_bytes(Encoding.DER) for c in user.identity.chain]
        return {
            "service_type": user.service_type,
            "service_name": f"{user.service_type} (fake)",
            "cert_id": f"fake-{cert.serial_number:x}",
            "cert_status": "Đang hoạt động",
            "serial_number": f"{cert.serial_number:x}",
            "cert_subject": cert.subject.rfc4514_string(),
            "cert_valid_from": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "cert_valid_to": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "cert_data": _b64(user.identity.certificate_der()),
            "chain_data": {"ca_cert": _b64(chain[0]) if chain else None, "root_cert": None},
            "transaction_id": "fake-cert",
        }

    def _sign(self, user_id: str, user: _User, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        tran_id = body.get("transaction_id")
        files = body.get("sign_files")
        if not tran_id or not isinstance(files, list) or len(files) != 1:
            return 400, {"status_code": 400, "message": "BAD_REQUEST: transaction_id, sign_files", "data": None}
        if tran_id in self.transactions:  # "yêu cầu là duy nhất": refused, and the phone is not asked again
            return 400, {"status_code": 400, "message": "BAD_REQUEST: transaction_id already used", "data": None}
        file = files[0]
        try:
            digest = bytes.fromhex(str(file.get("data_to_be_signed")))
        except ValueError:
            digest = b""
        if file.get("sign_type") != "hash" or len(digest) != 32:
            return 400, {"status_code": 400, "message": "BAD_REQUEST: a SHA-256 hash in hex", "data": None}
        tran = Transaction(
            tran_id, user_id, str(file.get("doc_id")), digest, str(body.get("transaction_desc")), self.now
        )
        self.transactions[tran_id] = tran
        user.prompts.append(tran_id)
        return 200, {
            "status_code": 200,
            "message": "sig_wait_for_user_confirm",
            "data": {"transaction_id": tran_id, "tran_code": f"fake-{len(self.transactions)}"},
        }


@pytest.fixture
def fake_remote_signer() -> Iterator[FakeRemoteSigner]:
    fake = FakeRemoteSigner()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
