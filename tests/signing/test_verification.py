"""What `verify` says of signatures other than the good ones: a signer from a CA outside the
trust roots is "not trusted" (and the same signature is valid against its own CA's root); a
certificate that had expired when it signed is "not valid at signing time", while one that
expired since is checked as it stood at its timestamp, and valid; a file that is not a
PDF is refused; an unsigned PDF has no signatures; a signature whose own bytes changed is
invalid, and the others are still read; and the digest the audit log records."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re

import pytest
import time_machine
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers

from approvals.signing import test_pki
from approvals.signing.errors import NotASignedDocument
from approvals.signing.signatures import sign_as_director, timestamp_authority
from approvals.signing.verification import VERDICTS, Verdict, document_digest, verify


@pytest.fixture(scope="module")
def foreign() -> test_pki.TestAuthority:
    return test_pki.TestAuthority.create("Foreign CA (THỬ NGHIỆM - TEST)")


def test_a_signer_from_a_foreign_ca_is_not_trusted(report, signing_images, local_pki, foreign):
    identity = foreign.issue("Trần Văn Khách", organisation="Cơ quan khác")
    signer = signers.SimpleSigner.load_pkcs12_data(identity.pkcs12(b"pw"), other_certs=[], passphrase=b"pw")
    signed = sign_as_director(report.pdf, signer, layout=report.layout, image=signing_images["signature"])

    (check,) = verify(signed, trust_roots=[local_pki.root])
    assert check.verdict is Verdict.not_trusted and not check.trusted
    assert check.intact and check.modification_level == "none"  # nothing changed: only its origin is unknown
    assert check.summary("vi") == "Trần Văn Khách (THỬ NGHIỆM - TEST) (Cơ quan khác): không được tin cậy"
    assert check.summary("en").endswith(": not trusted")
    assert check.fingerprint == identity.fingerprint

    (own,) = verify(signed, trust_roots=[foreign.identity.certificate_der()])
    assert own.verdict is Verdict.valid and own.trusted


def test_a_certificate_expired_when_it_signed_is_not_valid_at_signing_time(report, foreign):
    """Made with pyHanko directly: kehoach's own signing refuses an expired certificate."""
    now = dt.datetime.now(dt.UTC)
    identity = foreign.issue(
        "Nông Thị Hạnh",
        organisation="Sở Khoa học và Công nghệ",
        not_before=now - dt.timedelta(days=400),
        not_after=now - dt.timedelta(days=2),
    )
    signer = signers.SimpleSigner.load_pkcs12_data(identity.pkcs12(b"pw"), other_certs=[], passphrase=b"pw")
    out = signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(report.pdf)),
        signers.PdfSignatureMetadata(field_name="director", subfilter=fields.SigSeedSubFilter.PADES),
        signer=signer,
    )
    (check,) = verify(out.getvalue(), trust_roots=[foreign.identity.certificate_der()])
    assert check.verdict is Verdict.not_valid_at_signing and not check.trusted and check.intact
    assert check.summary("en").endswith(": certificate not valid at signing time")


def test_a_file_that_is_not_a_pdf_is_refused_and_an_unsigned_pdf_has_no_signatures(report, local_pki):
    for data in (b"", b"PK\x03\x04 a DOCX", report.pdf[:2000]):
        with pytest.raises(NotASignedDocument, match="not a readable PDF"):
            verify(data, trust_roots=[local_pki.root])
    assert verify(report.pdf, trust_roots=[local_pki.root]) == []


def test_the_digest_of_a_signed_file_and_every_verdict_in_both_languages(issued):
    assert document_digest(issued.sealed) == hashlib.sha256(issued.sealed).hexdigest()
    assert document_digest(issued.sealed) != document_digest(issued.numbered)
    assert set(VERDICTS) == set(Verdict)
    for language in ("vi", "en"):
        texts = [verdict.text(language) for verdict in Verdict]
        assert len(set(texts)) == len(texts) and all(texts)
    assert Verdict.modified.text("vi") == "đã bị sửa sau khi ký"


def test_a_certificate_expired_since_is_checked_as_it_stood_at_its_timestamp(
    report, signing_images, local_pki, foreign
):
    now = dt.datetime.now(dt.UTC)
    identity = foreign.issue(
        "Nông Thị Hạnh", organisation="Sở Khoa học và Công nghệ", not_after=now + dt.timedelta(days=1)
    )
    signer = signers.SimpleSigner.load_pkcs12_data(identity.pkcs12(b"pw"), other_certs=[], passphrase=b"pw")
    roots = [foreign.identity.certificate_der(), local_pki.root]  # the signer's and the TSA's
    signed = sign_as_director(
        report.pdf,
        signer,
        layout=report.layout,
        image=signing_images["signature"],
        timestamper=timestamp_authority(local_pki.tsa_url),
    )
    with time_machine.travel(now + dt.timedelta(days=30)):  # the certificate expired 29 days ago
        (check,) = verify(signed, trust_roots=roots)
    assert check.verdict is Verdict.valid and check.trusted
    assert check.checked_at == check.timestamp < now + dt.timedelta(minutes=5)  # as it stood then

    unstamped = sign_as_director(report.pdf, signer, layout=report.layout, image=signing_images["signature"])
    with time_machine.travel(now + dt.timedelta(days=30)):  # nothing proves it signed in time
        (check,) = verify(unstamped, trust_roots=roots)
    assert check.verdict is Verdict.not_valid_at_signing


def test_a_byte_changed_in_a_signature_itself_makes_it_invalid_and_the_others_are_still_read(issued, local_pki):
    contents = [match.end() for match in re.finditer(rb"/Contents <", issued.sealed)]
    assert len(contents) == 2
    broken = bytearray(issued.sealed)
    broken[contents[1] + 40] = ord("0") if broken[contents[1] + 40] != ord("0") else ord("1")  # the agency's
    director, agency = verify(bytes(broken), trust_roots=[local_pki.root])
    assert (director.field, director.verdict) == ("director", Verdict.valid)
    assert (agency.field, agency.verdict) == ("agency", Verdict.invalid) and not agency.intact
    assert agency.summary("en") == "?: invalid signature" and agency.problem


async def test_verify_refuses_to_block_a_running_event_loop(issued, local_pki):
    with pytest.raises(RuntimeError, match="off the event loop"):
        verify(issued.sealed, trust_roots=[local_pki.root])
