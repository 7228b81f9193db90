"""The signer interface: a configuration per signer (PKCS#12, PKCS#11, remote), its secret only
ever from the environment, and `open_signer`, which opens a PKCS#12 signer or says clearly why
not: a wrong or missing password, a missing or foreign file, a certificate expired or not yet
valid (refused before anything is signed, naming its dates)."""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from pydantic import TypeAdapter, ValidationError
from pyhanko.sign.signers import SimpleSigner

from approvals.errors import KehoachError
from approvals.signing import test_pki
from approvals.signing.backends import Pkcs11Signer, Pkcs12Signer, RemoteSigner, SignerConfig, open_signer
from approvals.signing.errors import SignerLocked, SigningRefused
from approvals.signing.signatures import sign_as_director, timestamp_authority
from tests.support.local_pki import PASSWORD

CONFIG: TypeAdapter[SignerConfig] = TypeAdapter(SignerConfig)
ENV = "KEHOACH_TEST_P12_PASSWORD"


def _p12(tmp_path, data: bytes, name: str = "signer.p12") -> Pkcs12Signer:
    (tmp_path / name).write_bytes(data)
    return Pkcs12Signer(file=tmp_path / name, password_env=ENV)


def test_a_pkcs12_signer_opens_with_the_password_its_configuration_names(local_pki, tmp_path):
    config = CONFIG.validate_python({"kind": "pkcs12", "file": str(tmp_path / "d.p12"), "password_env": ENV})
    assert isinstance(config, Pkcs12Signer)
    (tmp_path / "d.p12").write_bytes(local_pki.pkcs12("director"))
    with open_signer(config, {ENV: PASSWORD.decode()}) as signer:
        assert signer.signing_cert.subject.native["common_name"] == "Nguyễn Thị Lấp Lánh Ánh (THỬ NGHIỆM - TEST)"


def test_a_wrong_or_missing_password_locks_the_signer_with_a_clear_message(local_pki, tmp_path):
    config = _p12(tmp_path, local_pki.pkcs12("director"))
    with pytest.raises(SignerLocked) as wrong:
        _open(config, {ENV: "not-the-password"})
    assert str(wrong.value) == f"wrong password for the PKCS#12 file {config.file} (the one in {ENV})"
    with pytest.raises(SignerLocked, match=f"not in the environment: set {ENV}"):
        _open(config, {})
    with pytest.raises(SignerLocked, match=ENV):
        _open(config, {ENV: ""})


def test_a_missing_or_foreign_file_is_refused_naming_it(tmp_path):
    missing = Pkcs12Signer(file=tmp_path / "absent.p12", password_env=ENV)
    with pytest.raises(SigningRefused, match=r"absent\.p12 cannot be read: No such file"):
        _open(missing, {ENV: "x"})
    foreign = _p12(tmp_path, b"-----BEGIN CERTIFICATE-----\n", "notes.txt")
    with pytest.raises(SigningRefused, match=r"notes\.txt is not a PKCS#12 file"):
        _open(foreign, {ENV: "x"})


def _open(config, environ) -> None:
    with open_signer(config, environ):
        pass


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_expired_or_not_yet_valid_certificate_is_refused_with_its_dates_before_anything_is_signed(
    tmp_path, report, signing_images
):
    authority = test_pki.TestAuthority.create()
    now = dt.datetime.now(dt.UTC)
    expired = authority.issue(
        "Nông Thị Hạnh",
        organisation="Sở Khoa học và Công nghệ",
        not_before=now - dt.timedelta(days=800),
        not_after=now - dt.timedelta(days=70),
    )
    config = _p12(tmp_path, expired.pkcs12(b"pw"))
    with pytest.raises(SigningRefused) as refused:
        _open(config, {ENV: "pw"})
    end = (now - dt.timedelta(days=70)).astimezone(dt.timezone(dt.timedelta(hours=7)))
    assert "Nông Thị Hạnh (THỬ NGHIỆM - TEST) has expired" in str(refused.value)
    assert end.strftime("to %Y-%m-%dT%H:%M") in str(refused.value)  # the date, in Vietnam's time

    # Signing with it stops before anything else: not even the timestamp authority is asked
    # (it is unreachable here; reaching it would fail differently).
    signer = SimpleSigner.load_pkcs12_data(expired.pkcs12(b"pw"), other_certs=[], passphrase=b"pw")
    with pytest.raises(SigningRefused, match="has expired"):
        sign_as_director(
            report.pdf,
            signer,
            layout=report.layout,
            image=signing_images["signature"],
            timestamper=timestamp_authority(f"http://127.0.0.1:{_closed_port()}/tsa"),
        )

    early = authority.issue(
        "Nông Thị Hạnh", organisation="Sở Khoa học và Công nghệ", not_before=now + dt.timedelta(days=3)
    )
    with pytest.raises(SigningRefused, match="is not valid yet: it is valid from"):
        _open(_p12(tmp_path, early.pkcs12(b"pw"), "early.p12"), {ENV: "pw"})


def test_the_configurations_name_environment_variables_never_secrets():
    pkcs11 = CONFIG.validate_python(
        {
            "kind": "pkcs11",
            "module": "/usr/lib/softhsm/libsofthsm2.so",
            "token_label": "kehoach",
            "key_label": "director",
            "pin_env": "KEHOACH_DIRECTOR_PIN",
        }
    )
    assert isinstance(pkcs11, Pkcs11Signer) and pkcs11.pin_env == "KEHOACH_DIRECTOR_PIN"
    remote = CONFIG.validate_python(
        {
            "kind": "remote",
            "base_url": "https://gwsca.example.vn/sca/sp769/v1",
            "user_id": "079123456789",
            "client_id": "kehoach",
            "secret_env": "KEHOACH_SMARTCA_SECRET",
        }
    )
    assert isinstance(remote, RemoteSigner)
    with pytest.raises(ValidationError, match="password"):  # a password written into the configuration
        CONFIG.validate_python({"kind": "pkcs12", "file": "a.p12", "password_env": "P", "password": "123456"})
    with pytest.raises(ValidationError, match="password_env"):  # a value where a variable's name goes
        CONFIG.validate_python({"kind": "pkcs12", "file": "a.p12", "password_env": "hunter 2!"})
    with pytest.raises(ValidationError, match="kind"):
        CONFIG.validate_python({"kind": "smartcard", "file": "a.p12"})

    # A PIN not in the environment stops a token before its library is loaded.
    with pytest.raises(SignerLocked, match="KEHOACH_DIRECTOR_PIN"):
        _open(pkcs11, {})
    # A remote signer is not opened here: its signature waits for the phone, on its own path.
    with pytest.raises(SigningRefused, match="remote signing path"):
        _open(remote, {})


def test_every_signing_error_is_one_of_the_projects_errors():
    from approvals.signing import errors

    kinds = [errors.SigningRefused, errors.SignerLocked, errors.SignerUnavailable, errors.NotASignedDocument]
    assert all(issubclass(kind, KehoachError) for kind in kinds)
    assert {kind.status for kind in kinds} == {422, 503}
