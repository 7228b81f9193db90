"""Signers for development and `kehoach demo`: a test certification authority made in the data
folder on first use, and for each director or agency asked for, a certificate, a PKCS#12 file
and a drawn signature or seal, every one marked as a test. Refused in production
(`approvals.config` will not start without a signing file there).

Several processes may ask at once (the worker, the web service): each file is written under a
lock, to a temporary name first, so a reader never sees half a key."""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.serialization import pkcs12

from approvals.plan.schema import Plan
from approvals.signing.backends import Pkcs12Signer, SignerConfig
from approvals.signing.test_images import draw_test_seal, draw_test_signature
from approvals.signing.test_pki import TestAuthority, TestIdentity

PASSWORD_ENV = "KEHOACH_TEST_SIGNING_PASSWORD"  # what the test PKCS#12 files' password is read from
FOLDER = "test-signing"


class TestSigners:
    """Test signers kept in `data_dir/test-signing/`, made as they are first asked for."""

    test = True

    def __init__(self, data_dir: Path, plan: Plan) -> None:
        self.folder = data_dir / FOLDER
        self.plan = plan

    def director(self, official_id: str) -> SignerConfig:
        official = self.plan.official(official_id)
        name = official.name if official is not None else official_id
        organisation = self._organisation_of(official.agency if official is not None else "")
        return self._signer(official_id, name, organisation, image=lambda: draw_test_signature(name))

    def agency(self, agency_id: str) -> SignerConfig:
        organisation = self._organisation_of(agency_id)
        return self._signer(agency_id, organisation, organisation, image=lambda: draw_test_seal(organisation))

    def trust_roots(self) -> list[bytes]:
        with self._locked():
            return [self._authority().identity.certificate_der()]

    def timestamp_url(self) -> str | None:
        return None  # no timestamp authority in development: signatures carry the signer's time

    def environ(self) -> dict[str, str]:
        with self._locked():
            return {PASSWORD_ENV: self._password()}

    def _organisation_of(self, agency_id: str) -> str:
        try:
            return self.plan.agency(agency_id).name.vi
        except KeyError:  # an id the plan lacks: the certificate still names it
            return agency_id or "kehoach"

    def _signer(self, key: str, name: str, organisation: str, *, image: Callable[[], bytes]) -> SignerConfig:
        p12, png = self.folder / f"{key}.p12", self.folder / f"{key}.png"
        with self._locked():
            if not p12.is_file():
                identity: TestIdentity = self._authority().issue(name, organisation=organisation)
                _write(p12, identity.pkcs12(self._password().encode()))
            if not png.is_file():
                _write(png, image())
        return Pkcs12Signer(file=p12, password_env=PASSWORD_ENV, image=png)

    def _authority(self) -> TestAuthority:
        """The folder's test CA, made on first use (called under the lock)."""
        key_file = self.folder / "test-ca.p12"
        if key_file.is_file():
            key, certificate, _ = pkcs12.load_key_and_certificates(key_file.read_bytes(), self._password().encode())
            assert key is not None and certificate is not None, f"{key_file} holds no CA"
            return TestAuthority(TestIdentity(key, certificate))  # type: ignore[arg-type]
        authority = TestAuthority.create()
        _write(key_file, authority.identity.pkcs12(self._password().encode()))
        _write(self.folder / "test-ca.pem", authority.identity.certificate_pem())
        return authority

    def _password(self) -> str:
        """The test files' password, made on first use (called under the lock)."""
        path = self.folder / "password"
        if not path.is_file():
            _write(path, secrets.token_urlsafe(24).encode())
        return path.read_text().strip()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
