"""The PKCS#11 signer (issue 24) against a real token: SoftHSM2, a fresh token per test
(`tests/support/softhsm.py`). A PDF signed on the token validates with pyHanko as intact and
trusted, and each fault a provincial IT person meets (token not plugged in, wrong or locked
PIN, wrong labels, an expired certificate) stops before anything is signed, with an error that
says what to do."""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from io import BytesIO
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509  # type: ignore[import-untyped]
from fpdf import FPDF
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.pkcs11 import PKCS11Signer
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.pdf_embedded import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext

from approvals.signing.errors import SignerLocked, SignerUnavailable, SigningRefused
from approvals.signing.pkcs11 import check_pkcs11_signer, open_pkcs11_signer
from tests.support.softhsm import SoftHsmToken, softhsm_token  # noqa: F401  (the fixture)

on_token = pytest.mark.processes  # the fixture starts softhsm2-util


def _pdf() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="Bao cao tong hop ket qua thuc hien ke hoach truyen thong")
    return bytes(pdf.output())


def _sign(signer: signers.Signer, pdf: bytes, output: BytesIO | None = None) -> BytesIO:
    meta = signers.PdfSignatureMetadata(field_name="Director")
    return signers.sign_pdf(IncrementalPdfFileWriter(BytesIO(pdf)), meta, signer=signer, output=output)


def _opened(
    token: SoftHsmToken, *, token_label: str | None = None, key_label: str | None = None, pin: str | None = None
) -> AbstractContextManager[PKCS11Signer]:
    return open_pkcs11_signer(
        module=token.module,
        token_label=token.label if token_label is None else token_label,
        key_label=token.key_label if key_label is None else key_label,
        pin=token.pin if pin is None else pin,
    )


def _validated(signed: BytesIO, token: SoftHsmToken) -> PdfSignatureStatus:
    root = asn1_x509.Certificate.load(token.authority.identity.certificate_der())
    (signature,) = PdfFileReader(signed).embedded_signatures
    return validate_pdf_signature(signature, ValidationContext(trust_roots=[root]))


@on_token
def test_a_pdf_signed_on_the_token_validates_as_intact_and_trusted(softhsm_token: SoftHsmToken) -> None:  # noqa: F811
    with _opened(softhsm_token) as signer:
        signed = _sign(signer, _pdf())
    status = _validated(signed, softhsm_token)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.signing_cert.dump() == softhsm_token.identity.certificate_der()
    (signature,) = PdfFileReader(signed).embedded_signatures
    embedded = {c.chosen.dump() for c in signature.signed_data["certificates"]}
    assert softhsm_token.authority.identity.certificate_der() in embedded  # the chain from the token goes along


@on_token
def test_a_pdf_signed_with_a_foreign_key_is_not_trusted(softhsm_token: SoftHsmToken) -> None:  # noqa: F811
    """The other side of the test above: the same token's signature checked against another CA."""
    from approvals.signing.test_pki import TestAuthority

    with _opened(softhsm_token) as signer:
        signed = _sign(signer, _pdf())
    foreign = asn1_x509.Certificate.load(TestAuthority.create().identity.certificate_der())
    (signature,) = PdfFileReader(signed).embedded_signatures
    status = validate_pdf_signature(signature, ValidationContext(trust_roots=[foreign]))
    assert status.intact and not status.trusted


@on_token
def test_the_session_is_closed_on_leaving_and_the_token_opens_again(softhsm_token: SoftHsmToken) -> None:  # noqa: F811
    import pkcs11

    with _opened(softhsm_token) as signer:
        session = signer.pkcs11_session
        assert list(session.get_objects({pkcs11.Attribute.LABEL: softhsm_token.key_label}))
    with pytest.raises(pkcs11.exceptions.SessionHandleInvalid):
        session.generate_random(64)
    with _opened(softhsm_token) as signer:
        assert _validated(_sign(signer, _pdf()), softhsm_token).intact


@on_token
def test_the_check_at_start_opens_and_closes_and_names_the_certificate(softhsm_token: SoftHsmToken) -> None:  # noqa: F811
    certificate = check_pkcs11_signer(
        module=softhsm_token.module,
        token_label=softhsm_token.label,
        key_label=softhsm_token.key_label,
        pin=softhsm_token.pin,
    )
    assert certificate == softhsm_token.identity.certificate
    with _opened(softhsm_token) as signer:  # closed again: the token opens (a second login would fail)
        assert signer.signing_cert.dump() == softhsm_token.identity.certificate_der()


@on_token
def test_a_wrong_pin_fails_the_check_at_start_and_does_not_lock_the_token(softhsm_token: SoftHsmToken) -> None:  # noqa: F811
    for _ in range(3):
        with pytest.raises(SignerLocked) as refused:
            check_pkcs11_signer(
                module=softhsm_token.module,
                token_label=softhsm_token.label,
                key_label=softhsm_token.key_label,
                pin="0000",
            )
    message = str(refused.value)
    assert message.startswith("Wrong PIN for token 'kehoach-test': the token refused it.")
    assert "counts wrong PINs" in message  # SoftHSM sets CKF_USER_PIN_COUNT_LOW after one
    assert "0000" not in message  # the PIN tried is never repeated
    with _opened(softhsm_token) as signer:
        assert signer.signing_cert.dump() == softhsm_token.identity.certificate_der()


@on_token
def test_a_locked_pin_is_refused_saying_so_even_with_the_right_pin(softhsm_token: SoftHsmToken) -> None:  # noqa: F811
    softhsm_token.lock_user_pin()
    with (
        pytest.raises(SignerLocked, match=r"The PIN of token 'kehoach-test' is locked after too many wrong PINs"),
        _opened(softhsm_token),
    ):
        pass


@on_token
def test_no_pin_is_refused_without_trying_one(softhsm_token: SoftHsmToken) -> None:  # noqa: F811
    with (
        pytest.raises(SignerLocked, match=r"No PIN was given for token 'kehoach-test'"),
        _opened(softhsm_token, pin=""),
    ):
        pass


@on_token
def test_a_token_not_plugged_in_names_the_tokens_that_are(softhsm_token: SoftHsmToken) -> None:  # noqa: F811
    softhsm_token.add_token("SO KHCN LANG SON")
    with pytest.raises(SignerUnavailable) as unavailable, _opened(softhsm_token, token_label="VNPT-CA 5401"):
        pass
    message = str(unavailable.value)
    assert message.startswith("No token labelled 'VNPT-CA 5401' is plugged in")
    assert "the tokens present are: 'kehoach-test', 'SO KHCN LANG SON'." in message  # sorted: slots come in any order


def test_a_missing_module_is_unavailable(tmp_path: Path) -> None:
    missing = tmp_path / "libeTPkcs11.so"
    with (
        pytest.raises(SignerUnavailable, match=rf"The PKCS#11 module {missing} does not exist"),
        open_pkcs11_signer(module=missing, token_label="t", key_label="k", pin="1"),
    ):
        pass


def test_a_file_that_is_no_pkcs11_module_is_unavailable(tmp_path: Path) -> None:
    notes = tmp_path / "libsofthsm2.so"
    notes.write_text("not a library\n")
    with (
        pytest.raises(SignerUnavailable, match=rf"{notes} could not be loaded as a PKCS#11 module \(PKCS11Error: OS"),
        open_pkcs11_signer(module=notes, token_label="t", key_label="k", pin="1"),
    ):
        pass


@on_token
def test_an_unknown_key_label_is_refused_naming_the_keys_there(softhsm_token: SoftHsmToken) -> None:  # noqa: F811
    with pytest.raises(SigningRefused) as refused, _opened(softhsm_token, key_label="agency"):
        pass
    assert str(refused.value).startswith(
        "No private key labelled 'agency' on token 'kehoach-test'; the keys on it are labelled: 'director'."
    )


@on_token
def test_a_key_without_its_certificate_is_refused(softhsm_token: SoftHsmToken) -> None:  # noqa: F811
    other = softhsm_token.authority.issue("Trần Thị Bình", organisation="Sở Nội vụ")
    softhsm_token.put(other, "agency", with_certificate=False)
    with (
        pytest.raises(
            SigningRefused, match=r"No certificate labelled 'agency' on token 'kehoach-test' \(the key is there\)"
        ),
        _opened(softhsm_token, key_label="agency"),
    ):
        pass


@on_token
def test_a_certificate_of_another_key_is_refused(softhsm_token: SoftHsmToken) -> None:  # noqa: F811
    renewed = softhsm_token.authority.issue("Nguyễn Văn An", organisation="Sở Nội vụ")
    softhsm_token.put(softhsm_token.identity, "mixed", certificate=renewed.certificate)
    with (
        pytest.raises(SigningRefused, match=r"is not the certificate of the key with that label"),
        _opened(softhsm_token, key_label="mixed"),
    ):
        pass


@on_token
def test_an_expired_certificate_is_refused_before_anything_is_signed(softhsm_token: SoftHsmToken) -> None:  # noqa: F811
    now = dt.datetime.now(dt.UTC)
    expired = softhsm_token.authority.issue(
        "Nguyễn Văn An",
        organisation="Sở Nội vụ",
        not_before=dt.datetime(2023, 1, 2, 3, 4, tzinfo=dt.UTC),
        not_after=now - dt.timedelta(days=3),
    )
    softhsm_token.put(expired, "expired")
    output = BytesIO()
    with pytest.raises(SigningRefused) as refused, _opened(softhsm_token, key_label="expired") as signer:
        _sign(signer, _pdf(), output)
    assert output.getvalue() == b""
    end = expired.certificate.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
    assert str(refused.value).startswith(
        "The certificate of Nguyễn Văn An (THỬ NGHIỆM - TEST) (key 'expired' on token 'kehoach-test') "
        f"expired on {end} (valid from 2023-01-02 03:04 UTC to {end}): nothing was signed."
    )
    with pytest.raises(SigningRefused, match="expired on"):  # and a service fails at start on it
        check_pkcs11_signer(
            module=softhsm_token.module, token_label=softhsm_token.label, key_label="expired", pin=softhsm_token.pin
        )


@on_token
def test_a_certificate_not_yet_valid_is_refused(softhsm_token: SoftHsmToken) -> None:  # noqa: F811
    start = dt.datetime.now(dt.UTC).replace(microsecond=0, second=0) + dt.timedelta(days=2)
    later = softhsm_token.authority.issue("Nguyễn Văn An", organisation="Sở Nội vụ", not_before=start)
    softhsm_token.put(later, "later")
    with (
        pytest.raises(SigningRefused, match=rf"is not valid until {start:%Y-%m-%d %H:%M} UTC"),
        _opened(softhsm_token, key_label="later"),
    ):
        pass


@on_token
def test_a_token_in_use_is_busy_and_the_first_signature_still_succeeds(softhsm_token: SoftHsmToken) -> None:  # noqa: F811
    with _opened(softhsm_token) as signer:
        with (
            pytest.raises(SignerUnavailable, match=r"Token 'kehoach-test' is busy with another signature"),
            _opened(softhsm_token),
        ):
            pass
        signed = _sign(signer, _pdf())
    assert _validated(signed, softhsm_token).intact
