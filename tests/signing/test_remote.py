"""Remote signing confirmed on the phone (issue 24), against a fake provider that speaks SmartCA's
HTTP shape on 127.0.0.1 (tests/support/fake_remote_signer.py): the PDF signed in two halves with
the state read back as another process would, what lapses, what is unavailable, and what is
refused before anything reaches the phone."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509  # type: ignore[import-untyped]
from fpdf import FPDF
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from approvals.signing import test_pki
from approvals.signing.errors import RemoteSignatureLapsed, SignerLocked, SignerUnavailable, SigningRefused
from approvals.signing.interrupted import PendingRemoteSignature, begin_remote_signature, finish_remote_signature
from approvals.signing.remote import (
    Lapsed,
    Pending,
    RemoteSigningClient,
    Signed,
    outcome_of_callback,
    sign_remotely,
    wait_for_signature,
)
from service.prefect_server import free_port
from tests.support.fake_remote_signer import SP_ID, SP_PASSWORD, FakeRemoteSigner, fake_remote_signer  # noqa: F401

DIRECTOR = "001088000123"  # a CCCD number: SmartCA's user_id
EXPIRED = "001088000999"


@pytest.fixture(scope="module")
def authority() -> test_pki.TestAuthority:
    return test_pki.TestAuthority.create()


@pytest.fixture(scope="module")
def director(authority) -> test_pki.TestIdentity:
    return authority.issue("Nguyễn Văn An", organisation="Sở Khoa học và Công nghệ tỉnh Lạng Sơn")


@pytest.fixture(scope="module")
def expired(authority) -> test_pki.TestIdentity:
    now = dt.datetime.now(dt.UTC)
    return authority.issue(
        "Trần Thị Bình",
        organisation="Sở Khoa học và Công nghệ tỉnh Lạng Sơn",
        not_before=now - dt.timedelta(days=800),
        not_after=now - dt.timedelta(days=1),
    )


@pytest.fixture(scope="module")
def report() -> bytes:
    pdf = FPDF()
    pdf.set_compression(False)  # its text readable in the bytes, to change a figure in it
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="Bao cao ket qua thuc hien Ke hoach truyen thong nam 2026")
    return bytes(pdf.output())


@pytest.fixture
def provider(fake_remote_signer, director, expired) -> FakeRemoteSigner:  # noqa: F811
    fake_remote_signer.add_user(DIRECTOR, director)
    fake_remote_signer.add_user(EXPIRED, expired)
    return fake_remote_signer


@pytest.fixture
async def client(provider) -> AsyncIterator[RemoteSigningClient]:
    async with RemoteSigningClient(provider.base_url, sp_id=SP_ID, sp_password=SP_PASSWORD, timeout=5.0) as c:
        yield c


def director_signer(signer: signers.ExternalSigner) -> signers.PdfSigner:
    """What the caller builds: the field and PAdES metadata (the appearance is another helper's)."""
    meta = signers.PdfSignatureMetadata(field_name="ChuKyGiamDoc", subfilter=fields.SigSeedSubFilter.PADES)
    return signers.PdfSigner(meta, signer=signer)


async def validated(signed: bytes, authority: test_pki.TestAuthority) -> Any:
    signatures = PdfFileReader(BytesIO(signed)).embedded_signatures
    assert len(signatures) == 1
    root = asn1_x509.Certificate.load(authority.identity.certificate_der())
    return await async_validate_pdf_signature(signatures[0], ValidationContext(trust_roots=[root]))


async def test_a_report_signed_on_the_phone_and_finished_by_another_process_validates(
    provider, client, director, authority, report
):
    remote = await client.certificate(DIRECTOR)
    assert remote.certificate == director.certificate
    assert remote.chain == (authority.certificate,)

    pending = await begin_remote_signature(report, director_signer, remote.certificate, remote.chain)
    state = json.dumps(pending.to_json())  # what the suspended flow run keeps
    await client.submit(
        DIRECTOR, pending.to_be_signed, transaction_id="kehoach-run-1-director", description="Báo cáo năm 2026"
    )
    assert await client.status("kehoach-run-1-director") == Pending("sig_wait_for_user_confirm")
    (request,) = provider.signature_requests()
    assert request["sign_files"][0]["data_to_be_signed"] == pending.to_be_signed.hex()
    assert request["sign_files"][0]["sign_type"] == "hash"
    assert request["transaction_desc"] == "Báo cáo năm 2026"

    provider.confirm("kehoach-run-1-director")

    # another process: only the state and the transaction id survived
    restored = PendingRemoteSignature.from_json(json.loads(state))
    assert restored == pending
    async with RemoteSigningClient(provider.base_url, sp_id=SP_ID, sp_password=SP_PASSWORD) as later:
        outcome = await later.status("kehoach-run-1-director")
    assert isinstance(outcome, Signed)
    signed = await finish_remote_signature(restored, outcome.signature)

    assert signed.startswith(report)  # an incremental update: the report's bytes as they were
    status = await validated(signed, authority)
    assert (status.intact, status.valid, status.trusted) == (True, True, True)
    assert status.signing_cert.sha256.hex() == director.fingerprint
    assert provider.prompts(DIRECTOR) == ["kehoach-run-1-director"]


async def test_sign_remotely_waits_for_the_phone_then_returns_the_signed_report(
    provider, client, director, authority, report
):
    signing = asyncio.create_task(
        sign_remotely(
            client,
            report,
            director_signer,
            user_id=DIRECTOR,
            transaction_id="kehoach-run-2-director",
            description="Báo cáo năm 2026",
            poll_every=0.05,
            give_up_after=60,
        )
    )
    asked = await asyncio.to_thread(provider.wait_for_prompt, DIRECTOR)
    assert not signing.done()  # it waits for the signer
    provider.confirm(asked.transaction_id)
    signed = await signing

    status = await validated(signed, authority)
    assert (status.intact, status.valid, status.trusted) == (True, True, True)
    assert status.signing_cert.sha256.hex() == director.fingerprint


@pytest.mark.parametrize("answer", ["refuse", "lapse"])
async def test_a_request_refused_on_the_phone_or_lapsed_gives_no_signed_report(provider, client, report, answer):
    signing = asyncio.create_task(
        sign_remotely(
            client,
            report,
            director_signer,
            user_id=DIRECTOR,
            transaction_id=f"kehoach-run-3-{answer}",
            description="Báo cáo năm 2026",
            poll_every=0.05,
            give_up_after=60,
        )
    )
    asked = await asyncio.to_thread(provider.wait_for_prompt, DIRECTOR)
    if answer == "refuse":
        provider.refuse(asked.transaction_id)
    else:
        provider.advance(provider.lapse_after + 1)
    with pytest.raises(RemoteSignatureLapsed, match="refused" if answer == "refuse" else "expired"):
        await signing
    outcome = await client.status(asked.transaction_id)
    assert isinstance(outcome, Lapsed)
    assert provider.transactions[asked.transaction_id].signature is None


async def test_a_signer_who_never_answers_lapses_after_the_wait_given(provider, client, report):
    pending = await begin_remote_signature(report, director_signer, (await client.certificate(DIRECTOR)).certificate)
    await client.submit(DIRECTOR, pending.to_be_signed, transaction_id="kehoach-run-4", description="Báo cáo")
    with pytest.raises(RemoteSignatureLapsed, match=r"did not confirm within 0\.2 s"):
        await wait_for_signature(client, "kehoach-run-4", poll_every=0.05, give_up_after=0.2)


async def test_a_provider_that_is_down_is_unavailable_until_it_is_back(provider, client, director):
    provider.go_down()
    with pytest.raises(SignerUnavailable, match="cannot be reached"):
        await client.certificate(DIRECTOR)
    with pytest.raises(SignerUnavailable, match="cannot be reached"):
        await client.status("kehoach-run-5")
    provider.come_back()
    assert (await client.certificate(DIRECTOR)).certificate == director.certificate


async def test_a_provider_that_hangs_past_the_timeout_is_unavailable(provider, director, report):
    async with RemoteSigningClient(provider.base_url, sp_id=SP_ID, sp_password=SP_PASSWORD, timeout=0.5) as client:
        provider.hang()
        with pytest.raises(SignerUnavailable, match=r"did not answer within 0.5 s"):
            await client.certificate(DIRECTOR)
        provider.release()
        assert (await client.certificate(DIRECTOR)).certificate == director.certificate


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_provider_answering_5xx_is_unavailable(provider, client, report, status):
    pending = await begin_remote_signature(report, director_signer, (await client.certificate(DIRECTOR)).certificate)
    provider.fail_with(status)
    with pytest.raises(SignerUnavailable, match="SERVER_INTERNAL_ERROR"):
        await client.certificate(DIRECTOR)
    with pytest.raises(SignerUnavailable):
        await client.submit(DIRECTOR, pending.to_be_signed, transaction_id="kehoach-run-6", description="Báo cáo")
    with pytest.raises(SignerUnavailable):
        await client.status("kehoach-run-6")
    assert provider.prompts(DIRECTOR) == []
    provider.fail_with(None)
    await client.submit(DIRECTOR, pending.to_be_signed, transaction_id="kehoach-run-6", description="Báo cáo")
    assert provider.prompts(DIRECTOR) == ["kehoach-run-6"]


async def test_wrong_credentials_or_an_unknown_signer_are_refused(provider, client):
    async with RemoteSigningClient(provider.base_url, sp_id=SP_ID, sp_password="wrong") as wrong:
        with pytest.raises(SigningRefused, match="SP_CREDENTIAL_INVALID") as refused:
            await wrong.certificate(DIRECTOR)
        assert "wrong" not in str(refused.value)  # the secret is never in a message
        with pytest.raises(SigningRefused, match="SP_CREDENTIAL_INVALID"):
            await wrong.submit(DIRECTOR, bytes(32), transaction_id="kehoach-run-7", description="Báo cáo")
    with pytest.raises(SigningRefused, match="user_id not found"):
        await client.certificate("079999999999")
    assert provider.prompts(DIRECTOR) == []


def test_credentials_come_from_the_environment_or_the_signer_is_locked():
    with pytest.raises(SignerLocked, match="KEHOACH_REMOTE_SIGNER_SP_PASSWORD"):
        RemoteSigningClient.from_environment("http://127.0.0.1:1/sca/sp769", env={"KEHOACH_REMOTE_SIGNER_SP_ID": "x"})


async def test_submitting_the_same_transaction_twice_asks_the_phone_once(provider, client, report, authority):
    pending = await begin_remote_signature(report, director_signer, (await client.certificate(DIRECTOR)).certificate)
    for _ in range(2):  # e.g. the task retried after a crash between submit and suspend
        await client.submit(DIRECTOR, pending.to_be_signed, transaction_id="kehoach-run-8", description="Báo cáo")
    assert len(provider.signature_requests()) == 2  # both reached the provider ...
    assert provider.prompts(DIRECTOR) == ["kehoach-run-8"]  # ... and the phone asked once
    provider.confirm("kehoach-run-8")
    signed = await finish_remote_signature(pending, await wait_for_signature(client, "kehoach-run-8"))
    assert (await validated(signed, authority)).valid


async def test_a_transaction_id_reused_for_another_document_gets_no_signature_embedded(provider, client, report):
    certificate = (await client.certificate(DIRECTOR)).certificate
    first = await begin_remote_signature(report, director_signer, certificate)
    other = await begin_remote_signature(report + b"\n% another version\n", director_signer, certificate)
    assert other.to_be_signed != first.to_be_signed
    await client.submit(DIRECTOR, first.to_be_signed, transaction_id="kehoach-run-9", description="Báo cáo")
    await client.submit(DIRECTOR, other.to_be_signed, transaction_id="kehoach-run-9", description="Báo cáo")
    assert provider.prompts(DIRECTOR) == ["kehoach-run-9"]
    provider.confirm("kehoach-run-9")
    signature = await wait_for_signature(client, "kehoach-run-9")
    with pytest.raises(SigningRefused, match=r"not .*'s over this document"):
        await finish_remote_signature(other, signature)
    assert await finish_remote_signature(first, signature)


async def test_an_expired_certificate_is_refused_before_anything_is_submitted(provider, client, report, expired):
    remote = await client.certificate(EXPIRED)
    assert remote.certificate == expired.certificate
    with pytest.raises(SigningRefused, match="expired on"):
        await begin_remote_signature(report, director_signer, remote.certificate, remote.chain)
    with pytest.raises(SigningRefused, match=r"Trần Thị Bình .*expired on"):
        await sign_remotely(
            client, report, director_signer, user_id=EXPIRED, transaction_id="kehoach-run-10", description="Báo cáo"
        )
    assert provider.signature_requests() == []
    assert provider.prompts(EXPIRED) == []


async def test_a_document_changed_between_begin_and_finish_is_not_signed(provider, client, report, authority):
    pending = await begin_remote_signature(report, director_signer, (await client.certificate(DIRECTOR)).certificate)
    await client.submit(DIRECTOR, pending.to_be_signed, transaction_id="kehoach-run-11", description="Báo cáo")
    provider.confirm("kehoach-run-11")
    signature = await wait_for_signature(client, "kehoach-run-11")

    changed = bytearray(pending.document)
    changed[changed.index(b"2026")] = ord("3")  # a figure of the report, outside the signature's placeholder
    with pytest.raises(SigningRefused, match="the document changed"):
        await finish_remote_signature(dataclasses.replace(pending, document=bytes(changed)), signature)

    signed = bytearray(await finish_remote_signature(pending, signature))
    assert (await validated(bytes(signed), authority)).intact
    signed[signed.index(b"2026")] = ord("3")  # and a byte changed after signing
    assert not (await validated(bytes(signed), authority)).intact


class _CallbackReceiver:
    """The SP's webhook (§3.5): records what the provider POSTs."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.arrived:
                    receiver.received.append(body)
                    receiver.arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/smartca/callback"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def callback_receiver() -> Iterator[_CallbackReceiver]:
    receiver = _CallbackReceiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


async def test_the_provider_calls_back_with_the_signature_when_the_signer_confirms(
    provider, client, report, callback_receiver
):
    provider.callback_url = callback_receiver.url
    pending = await begin_remote_signature(report, director_signer, (await client.certificate(DIRECTOR)).certificate)
    await client.submit(DIRECTOR, pending.to_be_signed, transaction_id="kehoach-run-12", description="Báo cáo")
    await client.submit(DIRECTOR, pending.to_be_signed, transaction_id="kehoach-run-13", description="Báo cáo")
    provider.confirm("kehoach-run-12")
    provider.refuse("kehoach-run-13")
    with callback_receiver.arrived:
        assert callback_receiver.arrived.wait_for(lambda: len(callback_receiver.received) == 2, timeout=30)
    confirmed, refused = (outcome_of_callback(body) for body in callback_receiver.received)
    assert confirmed == ("kehoach-run-12", await client.status("kehoach-run-12"))
    assert isinstance(confirmed[1], Signed)
    assert await finish_remote_signature(pending, confirmed[1].signature)
    assert refused == ("kehoach-run-13", Lapsed("the signer refused the request on the phone"))


def test_a_pending_state_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match="version"):
        PendingRemoteSignature.from_json({"version": 99})
    with pytest.raises(ValueError, match="not a pending remote signature"):
        PendingRemoteSignature.from_json({"version": 1, "document": "!!"})
