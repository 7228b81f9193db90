"""Timestamps and long-term validation against the local PKI over HTTP: each signature carries an
RFC 3161 timestamp from the local timestamp authority, which verifies; the chain's OCSP response
(or CRL), fetched from the local services when signing, are in the document (PAdES-B-LT); a
certificate that names no revocation service still signs, without them; and a timestamp
authority that is down, or that does not answer in time, stops the signature with a clear
error, nothing half-signed."""

from __future__ import annotations

import datetime as dt
import io
import socket

import pytest
from asn1crypto import ocsp as asn1_ocsp
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers import SimpleSigner
from pyhanko.sign.validation import DocumentSecurityStore

from approvals.signing import test_pki
from approvals.signing.errors import SignerUnavailable
from approvals.signing.signatures import sign_as_director, timestamp_authority
from approvals.signing.verification import Verdict, verify


def test_each_signature_carries_a_timestamp_from_the_local_authority_which_verifies(issued, local_pki):
    checks = verify(issued.sealed, trust_roots=[local_pki.root])
    now = dt.datetime.now(dt.UTC)
    for check in checks:
        assert check.verdict is Verdict.valid
        assert check.timestamp is not None and check.signed_at is not None
        assert str(check.timestamp.tzinfo) == "Asia/Ho_Chi_Minh"
        assert check.signed_at - dt.timedelta(seconds=1) <= check.timestamp <= now  # given right after signing
    assert checks[0].timestamp < checks[1].timestamp  # the director's first, the agency's after

    # The timestamps are the local authority's own, chained to the same root.
    reader = PdfFileReader(io.BytesIO(issued.sealed))
    for embedded in reader.embedded_signatures:
        tokens = list(embedded.signer_info["unsigned_attrs"])
        assert [t["type"].native for t in tokens] == ["signature_time_stamp_token"]
        tsa = tokens[0]["values"][0]["content"]["certificates"][0].chosen
        assert tsa.subject.native["common_name"] == "Kehoach Local TSA (THỬ NGHIỆM - TEST)"


def test_the_chains_revocation_information_is_embedded_when_it_can_be_fetched(issued, local_pki):
    store = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(issued.sealed)))
    responders = set()
    for ref in store.ocsps:  # pyHanko takes the OCSP responses; the CRL is the fallback
        response = asn1_ocsp.OCSPResponse.load(ref.get_object().data)
        assert response["response_status"].native == "successful"
        (responder,) = response.basic_ocsp_response["certs"]  # the responder's certificate, with its answer
        responders.add(responder.subject.native["common_name"])
    assert responders == {"Kehoach Local OCSP (THỬ NGHIỆM - TEST)"}
    checks = verify(issued.sealed, trust_roots=[local_pki.root])
    assert [c.long_term for c in checks] == [True, True]
    # Only the signed revisions and the register's: the information went in with each signature.
    assert PdfFileReader(io.BytesIO(issued.sealed)).xrefs.total_revisions == 4


def test_a_certificate_that_names_no_revocation_service_signs_without_that_information(
    report, signing_images, local_pki
):
    authority = test_pki.TestAuthority.create()
    director = authority.issue("Nông Thị Hạnh", organisation="Sở Khoa học và Công nghệ")
    signer = SimpleSigner.load_pkcs12_data(director.pkcs12(b"pw"), other_certs=[], passphrase=b"pw")
    root = authority.identity.certificate_der()
    signed = sign_as_director(
        report.pdf,
        signer,
        layout=report.layout,
        image=signing_images["signature"],
        timestamper=timestamp_authority(local_pki.tsa_url),
        trust_roots=[root, local_pki.root],  # the TSA's root too
    )
    (check,) = verify(signed, trust_roots=[root, local_pki.root])
    assert check.verdict is Verdict.valid and check.timestamp is not None
    assert not check.long_term  # PAdES-B-T: nothing to embed for this certificate


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_timestamp_authority_that_is_down_or_silent_stops_the_signature_clearly(report, signing_images, pki_signers):
    sign = {"layout": report.layout, "image": signing_images["signature"]}
    down = f"http://127.0.0.1:{_closed_port()}/tsa"
    with pytest.raises(SignerUnavailable) as unavailable:
        sign_as_director(report.pdf, pki_signers["director"], timestamper=timestamp_authority(down), **sign)
    assert str(unavailable.value).startswith(f"the timestamp authority at {down} did not answer")

    # One that accepts the connection and never answers: given up on after its timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/tsa"
        with pytest.raises(SignerUnavailable, match=f"timestamp authority at {url} did not answer"):
            sign_as_director(
                report.pdf, pki_signers["director"], timestamper=timestamp_authority(url, timeout=0.5), **sign
            )
