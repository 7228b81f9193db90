"""Remote signing confirmed on the phone, as VNPT SmartCA works: the provider holds the key, we
send it a hash, the signer confirms in the provider's app, and we poll (or are called back)
until the signature comes back, is refused, or the request lapses.

The HTTP shape is SmartCA's "SP769" gateway (UAT `https://rmgateway.vnptit.vn/sca/sp769`,
production `https://gwsca.vnpt.vn/sca/sp769`), every call a POST of JSON, as documented in VNPT's
"Tài liệu tích hợp VNPT SMARTCA" (kịch bản tích hợp v4.1, §3.1-3.5; a copy is stored in the
public code index) and as its users call it: huy1692003/BE-PCHY_2024
`API_PCHY/Models/SMART_CA/SmartCA769.cs` (get the certificate, sign the hash, poll the status up
to 30 times) and a BHXH signing service whose poller treats `message == "EXPIRED"` as lapsed.

- `v1/credentials/get_certificate` {sp_id, sp_password, user_id, serial_number, transaction_id}
  -> data.user_certificates[{service_type, serial_number, cert_subject, cert_valid_from,
  cert_valid_to, cert_data (base64 DER), chain_data {ca_cert, root_cert}}].
- `v1/signatures/sign` {sp_id, sp_password, user_id, transaction_id (ours, "must be unique"),
  transaction_desc (shown on the phone), serial_number, time_stamp (YYYYMMddHHmmssZ),
  sign_files [{data_to_be_signed (the hash in hex), doc_id, file_type, sign_type: "hash"}]}
  -> message "sig_wait_for_user_confirm", data {transaction_id, tran_code}.
- `v1/signatures/sign/{transaction_id}/status` {} -> message "SUCCESS" and
  data.signatures[{doc_id, signature_value (base64), timestamp_signature}] once confirmed;
  "EXPIRED" once lapsed; no signatures while it waits.
- The callback (§3.5) POSTs {sp_id, status_code, message, transaction_id, signed_files[...]}.
- Errors (§3.1): 400 BAD_REQUEST, 401 SP_CREDENTIAL_INVALID (our account or the user),
  403 CREDENTIAL_STATUS_INVALID (the certificate), 500 SERVER_INTERNAL_ERROR.

`signature_value` is the raw signature over the submitted digest: SmartCA769.cs hands it to
VNPT's hash-signer library, which packages the CMS itself, as `finish_remote_signature` does.

Not documented, so assumed here: a refusal on the phone reads as a message naming it (REJECTED,
REFUSED, CANCELED or DENIED); a duplicate transaction id is answered 400 (the id "must be
unique"). `submit` treats that answer as already submitted when the provider knows the
transaction, so asking twice never makes the phone ask twice.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import functools
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from cryptography import x509
from pyhanko.sign.signers import PdfSigner

from approvals.signing.backends import RemoteSigner
from approvals.signing.errors import RemoteSignatureLapsed, SignerLocked, SignerUnavailable, SigningRefused
from approvals.signing.interrupted import (
    PdfSignerOrFactory,
    PendingRemoteSignature,
    begin_remote_signature,
    finish_remote_signature,
    remote_signer,
)

__all__ = [  # the interrupted-signing halves too: one place to import remote signing from
    "Lapsed",
    "Outcome",
    "Pending",
    "PendingRemoteSignature",
    "RemoteCertificate",
    "RemoteSigningClient",
    "Signed",
    "begin_remote_signature",
    "finish_remote_signature",
    "outcome_of_callback",
    "remote_signer",
    "sign_remotely",
    "wait_for_signature",
]

SANDBOX_URL = "https://rmgateway.vnptit.vn/sca/sp769"
PRODUCTION_URL = "https://gwsca.vnpt.vn/sca/sp769"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)  # a bound on a hung provider, not a measure of speed
REFUSALS = ("REJECT", "REFUS", "CANCEL", "DENIED")


@dataclass(frozen=True)
class Pending:
    """The signer has not answered on the phone yet."""

    message: str = ""


@dataclass(frozen=True)
class Signed:
    signature: bytes


@dataclass(frozen=True)
class Lapsed:
    """Refused on the phone, or expired before the signer confirmed."""

    reason: str


Outcome = Pending | Signed | Lapsed


@dataclass(frozen=True)
class RemoteCertificate:
    """One of a user's certificates at the provider."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    serial_number: str
    service_type: str


def _outcome(message: str, signatures: Any) -> Outcome:
    for item in signatures if isinstance(signatures, list) else []:
        value = item.get("signature_value") if isinstance(item, dict) else None
        if value:
            try:
                return Signed(base64.b64decode(value, validate=True))
            except binascii.Error as error:
                raise SignerUnavailable(
                    "the remote signing provider answered a signature that is not base64"
                ) from error
    word = message.strip().upper()
    if "EXPIRED" in word:
        return Lapsed("the request expired before the signer confirmed it on the phone")
    if any(refusal in word for refusal in REFUSALS):
        return Lapsed("the signer refused the request on the phone")
    return Pending(message)


def outcome_of_callback(payload: Mapping[str, Any]) -> tuple[str, Outcome]:
    """The transaction id and outcome a provider's callback (§3.5) reports."""
    return str(payload.get("transaction_id") or ""), _outcome(
        str(payload.get("message") or ""), payload.get("signed_files")
    )


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: httpx would load the CA bundle again for every client."""
    return ssl.create_default_context()


def _der(text: str) -> x509.Certificate:
    return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))


class RemoteSigningClient:
    """An async client of a SmartCA-shaped provider; `sp_id`/`sp_password` identify kehoach."""

    def __init__(
        self,
        base_url: str,
        *,
        sp_id: str,
        sp_password: str,
        timeout: httpx.Timeout | float = TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.sp_id = sp_id
        self._sp_password = sp_password
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout, transport=transport, verify=_tls())

    @classmethod
    def from_environment(
        cls, base_url: str, *, prefix: str = "KEHOACH_REMOTE_SIGNER", env: Mapping[str, str] | None = None
    ) -> RemoteSigningClient:
        """Credentials from `{prefix}_SP_ID` and `{prefix}_SP_PASSWORD`, never from a file."""
        env = os.environ if env is None else env
        sp_id, sp_password = env.get(f"{prefix}_SP_ID"), env.get(f"{prefix}_SP_PASSWORD")
        if not sp_id or not sp_password:
            raise SignerLocked(f"set {prefix}_SP_ID and {prefix}_SP_PASSWORD for the remote signing provider")
        return cls(base_url, sp_id=sp_id, sp_password=sp_password)

    @classmethod
    def of(cls, config: RemoteSigner, environ: Mapping[str, str]) -> RemoteSigningClient:
        """The client of a signer in the signing file: kehoach's account `client_id` with the provider,
        its secret read from the environment variable the file names, never from the file."""
        secret = environ.get(config.secret_env)
        if not secret:
            raise SignerLocked(
                f"the remote signing provider's secret is not in the environment: set {config.secret_env}"
            )
        return cls(str(config.base_url), sp_id=config.client_id, sp_password=secret)

    async def __aenter__(self) -> RemoteSigningClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _credentials(self) -> dict[str, str]:
        return {"sp_id": self.sp_id, "sp_password": self._sp_password}

    async def _post(self, path: str, payload: dict[str, Any], doing: str) -> dict[str, Any]:
        where = f"the remote signing provider ({self.base_url})"
        try:
            response = await self._http.post(path, json=payload)
        except httpx.TimeoutException as error:
            raise SignerUnavailable(
                f"{where} did not answer within {self.timeout.read} s while {doing}: try again once it is back"
            ) from error
        except httpx.TransportError as error:
            raise SignerUnavailable(f"{where} cannot be reached while {doing} ({error!r})") from error
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if response.status_code >= 400:
                body = {}
            else:
                raise SignerUnavailable(f"{where} answered {response.status_code} without JSON while {doing}")
        code = body.get("status_code")
        code = code if isinstance(code, int) else response.status_code
        message = str(body.get("message") or response.reason_phrase)
        if response.status_code >= 500 or code >= 500:
            raise SignerUnavailable(f"{where} failed while {doing}: {code} {message}; try again later")
        if response.status_code >= 400 or code >= 400:
            raise SigningRefused(f"{where} refused {doing}: {code} {message}")
        return body

    async def certificate(
        self, user_id: str, *, serial_number: str | None = None, service_type: str | None = None
    ) -> RemoteCertificate:
        """The user's certificate: the one with `serial_number`, or of `service_type` (SMARTCA for a
        person, ESEAL for an organisation's seal), or the only one. SigningRefused if none fits."""
        payload = {
            **self._credentials(),
            "user_id": user_id,
            "serial_number": serial_number or "",
            "transaction_id": f"cert-{time.time_ns()}",
        }
        body = await self._post("v1/credentials/get_certificate", payload, f"the certificate of {user_id}")
        found = (body.get("data") or {}).get("user_certificates") or []
        if serial_number:
            found = [c for c in found if str(c.get("serial_number", "")).lower() == serial_number.lower()]
        if service_type:
            found = [c for c in found if c.get("service_type") == service_type]
        if len(found) != 1:
            serials = ", ".join(str(c.get("serial_number")) for c in found) or "none"
            raise SigningRefused(
                f"{len(found)} certificates of {user_id} at the remote signing provider fit ({serials}): "
                "configure the serial number of the one to sign with"
            )
        chosen = found[0]
        chain_data = chosen.get("chain_data") or {}
        try:
            certificate = _der(chosen["cert_data"])
            chain = tuple(_der(chain_data[k]) for k in ("ca_cert", "root_cert") if chain_data.get(k))
        except (KeyError, TypeError, ValueError) as error:
            raise SignerUnavailable(
                f"the remote signing provider answered an unreadable certificate: {error}"
            ) from error
        return RemoteCertificate(
            certificate, chain, str(chosen.get("serial_number", "")), str(chosen.get("service_type", ""))
        )

    async def submit(
        self,
        user_id: str,
        digest: bytes,
        *,
        transaction_id: str,
        description: str,
        doc_id: str | None = None,
        serial_number: str | None = None,
    ) -> None:
        """Ask the provider to have `user_id` sign `digest` (a SHA-256 digest) on the phone, under
        our `transaction_id`. Submitting the same id again does not make the phone ask again."""
        payload = {
            **self._credentials(),
            "user_id": user_id,
            "transaction_id": transaction_id,
            "transaction_desc": description,
            "serial_number": serial_number or "",
            "time_stamp": dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%SZ"),
            "sign_files": [
                {
                    "data_to_be_signed": digest.hex(),
                    "doc_id": doc_id or transaction_id,
                    "file_type": "pdf",
                    "sign_type": "hash",
                }
            ],
        }
        try:
            await self._post("v1/signatures/sign", payload, f"the signature request {transaction_id}")
        except SigningRefused as refusal:
            try:  # a duplicate id is refused; if the provider knows ours, it was submitted already
                await self.status(transaction_id)
            except SigningRefused:
                raise refusal from None

    async def status(self, transaction_id: str) -> Outcome:
        """Where the request stands: Pending, Signed (the raw signature) or Lapsed."""
        body = await self._post(
            f"v1/signatures/sign/{quote(transaction_id, safe='')}/status", {}, f"the status of {transaction_id}"
        )
        return _outcome(str(body.get("message") or ""), (body.get("data") or {}).get("signatures"))


async def wait_for_signature(
    client: RemoteSigningClient, transaction_id: str, *, poll_every: float = 5.0, give_up_after: float = 300.0
) -> bytes:
    """Poll until signed; RemoteSignatureLapsed if refused, expired, or unanswered after `give_up_after` s."""
    deadline = time.monotonic() + give_up_after
    while True:
        outcome = await client.status(transaction_id)
        if isinstance(outcome, Signed):
            return outcome.signature
        if isinstance(outcome, Lapsed):
            raise RemoteSignatureLapsed(f"remote signature {transaction_id}: {outcome.reason}")
        if time.monotonic() + poll_every > deadline:
            raise RemoteSignatureLapsed(
                f"remote signature {transaction_id}: the signer did not confirm within {give_up_after:g} s"
            )
        await asyncio.sleep(poll_every)


async def sign_remotely(
    client: RemoteSigningClient,
    pdf: bytes,
    pdf_signer: PdfSignerOrFactory,
    *,
    user_id: str,
    transaction_id: str,
    description: str,
    serial_number: str | None = None,
    service_type: str | None = None,
    poll_every: float = 5.0,
    give_up_after: float = 300.0,
) -> bytes:
    """The simple path, in one process: the certificate, the document prepared, the hash
    submitted, polled until confirmed, and the signed PDF."""
    remote = await client.certificate(user_id, serial_number=serial_number, service_type=service_type)
    built = (
        pdf_signer if isinstance(pdf_signer, PdfSigner) else pdf_signer(remote_signer(remote.certificate, remote.chain))
    )
    pending = await begin_remote_signature(pdf, built, remote.certificate, remote.chain)
    await client.submit(
        user_id,
        pending.to_be_signed,
        transaction_id=transaction_id,
        description=description,
        serial_number=remote.serial_number,
    )
    signature = await wait_for_signature(client, transaction_id, poll_every=poll_every, give_up_after=give_up_after)
    return await finish_remote_signature(pending, signature, timestamper=built.default_timestamper)
