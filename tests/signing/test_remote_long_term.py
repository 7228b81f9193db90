"""A director who signs on the phone gets what a director with a key file gets (issue 24, lines 1
and 3): the report's signature made through the remote signing provider (the fake SmartCA, its
certificate from the local PKI), timestamped by the local authority and carrying its chain's
revocation information (PAdES-B-LT), then numbered and sealed by the agency; both signatures
valid, trusted and long-term, the director's signature intact after the register and the seal."""

from __future__ import annotations

import asyncio
import io

import pytest
from asn1crypto import ocsp as asn1_ocsp
from cryptography.hazmat.primitives.serialization import pkcs12
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import DocumentSecurityStore

from approvals.signing.issued_report import agency_sealed, director_asked_remotely, director_signed_remotely
from approvals.signing.remote import RemoteSigningClient, Signed
from approvals.signing.signers import load_signing_file
from approvals.signing.test_pki import TestIdentity
from approvals.signing.verification import Verdict, verify
from tests.signing.conftest import NUMBER, PLACE_DATE
from tests.support.fake_remote_signer import SP_ID, SP_PASSWORD, fake_remote_signer  # noqa: F401
from tests.support.local_pki import PASSWORD

PHONE_USER = "001088000777"


@pytest.fixture
def signers(tmp_path, local_pki, signing_images, fake_remote_signer):  # noqa: F811
    """A signing file: the director at the fake provider (the local PKI's director certificate),
    the agency a PKCS#12 file, the local root trusted and the local timestamp authority."""
    key, certificate, chain = pkcs12.load_key_and_certificates(local_pki.pkcs12("director"), PASSWORD)
    assert key is not None and certificate is not None
    fake_remote_signer.add_user(PHONE_USER, TestIdentity(key, certificate, list(chain)))  # type: ignore[arg-type]
    (tmp_path / "agency.p12").write_bytes(local_pki.pkcs12("agency"))
    (tmp_path / "root.der").write_bytes(local_pki.root)
    (tmp_path / "signature.png").write_bytes(signing_images["signature"])
    (tmp_path / "seal.png").write_bytes(signing_images["seal"])
    (tmp_path / "signing.yaml").write_text(
        f"""directors:
  dost_director:
    kind: remote
    base_url: {fake_remote_signer.base_url}
    user_id: '{PHONE_USER}'
    client_id: {SP_ID}
    secret_env: SCA_SECRET
    image: {tmp_path / "signature.png"}
agencies:
  dost: {{kind: pkcs12, file: {tmp_path / "agency.p12"}, password_env: AGENCY_PW, image: {tmp_path / "seal.png"}}}
trust_roots: [{tmp_path / "root.der"}]
timestamp_url: {local_pki.tsa_url}
""",
        encoding="utf-8",
    )
    environ = {"SCA_SECRET": SP_PASSWORD, "AGENCY_PW": PASSWORD.decode()}
    return load_signing_file(tmp_path / "signing.yaml", environ=environ)


async def test_a_signature_confirmed_on_the_phone_is_timestamped_and_long_term_like_the_others(
    signers,
    report,
    local_pki,
    fake_remote_signer,  # noqa: F811
):
    async with RemoteSigningClient(fake_remote_signer.base_url, sp_id=SP_ID, sp_password=SP_PASSWORD) as client:
        pending = await director_asked_remotely(
            report.pdf, report.layout, signers=signers, official_id="dost_director", client=client
        )
        await client.submit(
            PHONE_USER, pending.to_be_signed, transaction_id="kehoach-ltv-1", description="Ký số báo cáo năm 2026"
        )
        fake_remote_signer.confirm("kehoach-ltv-1")
        outcome = await client.status("kehoach-ltv-1")
    assert isinstance(outcome, Signed)
    by_director, made = await director_signed_remotely(
        pending, outcome.signature, signers=signers, official_id="dost_director"
    )
    store = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(by_director)))
    responders = {
        asn1_ocsp.OCSPResponse.load(ref.get_object().data).basic_ocsp_response["certs"][0].subject.native["common_name"]
        for ref in store.ocsps
    }
    assert responders == {"Kehoach Local OCSP (THỬ NGHIỆM - TEST)"}  # fetched when the signature was finished

    sealed, _ = await agency_sealed(
        by_director, report.layout, signers=signers, agency_id="dost", number=NUMBER, place_date=PLACE_DATE
    )
    checks = await asyncio.to_thread(verify, sealed, trust_roots=[local_pki.root])
    assert [(c.field, c.verdict, c.long_term, c.timestamp is not None) for c in checks] == [
        ("director", Verdict.valid, True, True),
        ("agency", Verdict.valid, True, True),
    ], [c.problem for c in checks]
    assert checks[0].modification_level == "form_filling"  # the register's number and date, then the seal
    assert made.fingerprint == checks[0].fingerprint
