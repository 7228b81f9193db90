"""A real PKCS#11 token for the tests: Debian's SoftHSM2 (`softhsm2`), a fresh token per test
in its own temp dir, holding a test director's key and certificate (with its public key) and
the test CA's certificate, as a certification authority's USB token holds them.

    @pytest.mark.processes
    def test_…(softhsm_token):
        with open_pkcs11_signer(module=softhsm_token.module, token_label=softhsm_token.label,
                                key_label=softhsm_token.key_label, pin=softhsm_token.pin) as signer: …

The fixture `softhsm_token` yields a `SoftHsmToken`: its module, label, PIN and SO PIN, the
test CA (`authority`) and the director (`identity`) whose key is under `key_label`; `put()`
writes another identity (an expired one, a key with another's certificate, a key without its
certificate), `add_token()` plugs in a second token, `lock_user_pin()` locks its PIN.

The first token of a process is made by `softhsm2-util --init-token` and filled once; each test
gets a copy of that token directory (a directory copy takes milliseconds, filling a token
0.3-0.5 s, the two RSA keys as much again). Starting `softhsm2-util` makes a test that asks for
the fixture a `processes` test (the fast tier forbids subprocesses): mark it so; the fixture
fails a test that is not.

What SoftHSM and python-pkcs11 do, and how the fixture copes (checked with two
configurations in one process, SoftHSM 2.6.1 and python-pkcs11 0.9.5):

- SoftHSM reads `SOFTHSM2_CONF` (its token directory) and scans that directory in
  `C_Initialize`, and only there. Once initialised, it sees neither a new `SOFTHSM2_CONF` nor a
  token that `softhsm2-util` creates afterwards (another process) until `C_Finalize` and
  `C_Initialize` again.
- python-pkcs11 loads a module once per process and keeps it initialised: `pkcs11.lib(path)`
  is cached by the path string, and calls `C_Initialize` only when the cached one is not.
  pyHanko and `approvals.signing.pkcs11` go through it.
- So each test gets a conf of its own in its tmp dir (`SOFTHSM2_CONF` set with monkeypatch)
  naming its own copy of the token directory, and then the cached module is
  re-initialised (`lib.reinitialize()`: `C_Finalize`, `C_Initialize`), which reads the new
  conf and finds the test's token. At teardown the module is finalised, so the next
  `pkcs11.lib(path)` in this process initialises it again under its own environment. The
  module is never unloaded (`pkcs11.unload` would `dlclose` it under any object still
  pointing into it). A finalise closes every session: a test holds none across tests (tests
  in one process run one after another; xdist workers are processes of their own).
- The tests must pass `SOFTHSM_MODULE` as given here: another spelling of the path is another
  cache entry on the same loaded library, whose initialised state would then disagree.
- SoftHSM never locks a user PIN: fifteen wrong PINs in a row only set
  `CKF_USER_PIN_COUNT_LOW`, and the right PIN still logs in. A test may try wrong PINs
  freely. `SoftHsmToken.lock_user_pin` sets `CKF_USER_PIN_LOCKED` in the token's file, as a
  token that locked itself reports it; SoftHSM then reports the flag but would still accept
  the PIN, so it shows what a caller does on reading the flag, not a refused login.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pkcs11 import Attribute, TokenFlag
from pkcs11.util.rsa import decode_rsa_private_key
from pkcs11.util.x509 import decode_x509_certificate, decode_x509_public_key

from approvals.signing.test_pki import TestAuthority, TestIdentity

SOFTHSM_UTIL = "/usr/bin/softhsm2-util"
SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "kehoach-test"
KEY_LABEL = "director"
USER_PIN = "246810"
SO_PIN = "13579135"
ORGANISATION = "Sở Khoa học và Công nghệ tỉnh Lạng Sơn"

# SoftHSM's file object store: each attribute is (type, kind, value), the numbers big-endian
# 64-bit. The token's flags are the vendor attribute CKA_OS_TOKENFLAGS, kind 2 (an integer).
_CKA_OS_TOKENFLAGS = 0x8000534B
_KIND_INTEGER = 2


@dataclass
class SoftHsmToken:
    """A SoftHSM token in a temp dir, logged out, holding `identity`'s key and certificate
    under `key_label` and its CA's certificate (labelled with the CA's name)."""

    conf: Path
    tokens: Path
    label: str
    pin: str
    so_pin: str
    authority: TestAuthority
    identity: TestIdentity
    key_label: str
    module: Path = SOFTHSM_MODULE
    _lib: Any = field(default=None, repr=False)

    def put(
        self,
        identity: TestIdentity,
        label: str,
        *,
        certificate: x509.Certificate | None = None,
        with_certificate: bool = True,
    ) -> None:
        """Write `identity`'s private and public key and its certificate (or `certificate`,
        for a token whose certificate is not its key's) under `label`, and the certificates
        above it unless the token has them: as a CA's tool writes them."""
        certificate = certificate or identity.certificate
        public = identity.key.public_key()
        object_id = hashlib.sha1(public.public_bytes(serialization.Encoding.DER, _SPKI)).digest()
        private_der = identity.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        named = {Attribute.TOKEN: True, Attribute.LABEL: label, Attribute.ID: object_id}
        with self.session() as session:
            session.create_object(
                decode_rsa_private_key(private_der)
                | named
                | {Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False}
            )
            certificate_der = certificate.public_bytes(serialization.Encoding.DER)
            session.create_object(decode_x509_public_key(certificate_der) | named)
            if with_certificate:
                session.create_object(decode_x509_certificate(certificate_der) | named)
            for above in identity.chain:
                der = above.public_bytes(serialization.Encoding.DER)
                if not list(session.get_objects({Attribute.VALUE: der})):
                    name = above.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
                    session.create_object(decode_x509_certificate(der) | {Attribute.TOKEN: True, Attribute.LABEL: name})

    def add_token(self, label: str) -> None:
        """Initialise another token, labelled `label`, in this token's directory (both plugged in)."""
        _init_token(self.conf, label, self.pin, self.so_pin)
        self._lib.reinitialize()

    def lock_user_pin(self) -> None:
        """Set CKF_USER_PIN_LOCKED on this token, as a token that locked its PIN after too many
        wrong ones stores it (SoftHSM never locks one itself: see the module's docstring)."""
        padded = self.label.encode().ljust(32)
        files = [f for f in self.tokens.glob("*/token.object") if padded in f.read_bytes()]
        assert len(files) == 1, f"token '{self.label}' should have one token.object, found {files}"
        data = bytearray(files[0].read_bytes())
        record = struct.pack(">QQ", _CKA_OS_TOKENFLAGS, _KIND_INTEGER)
        assert data.count(record) == 1, "SoftHSM's token.object format changed: no single CKA_OS_TOKENFLAGS"
        at = data.index(record) + len(record)
        (flags,) = struct.unpack(">Q", data[at : at + 8])
        data[at : at + 8] = struct.pack(">Q", flags | TokenFlag.USER_PIN_LOCKED)
        files[0].write_bytes(bytes(data))
        self._lib.reinitialize()  # SoftHSM reads the token's state from its files on initialising
        assert self._lib.get_token(token_label=self.label).flags & TokenFlag.USER_PIN_LOCKED

    def session(self) -> Any:
        """A read-write session, logged in (a context manager)."""
        return self._lib.get_token(token_label=self.label).open(rw=True, user_pin=self.pin)


_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def _init_token(conf: Path, label: str, pin: str, so_pin: str) -> None:
    command = [SOFTHSM_UTIL, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin]
    done = subprocess.run(command, env=os.environ | {"SOFTHSM2_CONF": str(conf)}, capture_output=True, text=True)
    assert done.returncode == 0, f"softhsm2-util --init-token failed: {done.stdout}{done.stderr}"


@dataclass(frozen=True)
class _Template:
    tokens: Path
    authority: TestAuthority
    director: TestIdentity


_template: _Template | None = None  # made once per process by the first test that asks for a token


def _conf(home: Path) -> Path:
    conf = home / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {home / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
        "slots.removable = false\n"
    )
    return conf


def _made_template(factory: pytest.TempPathFactory) -> _Template:
    """The token every test starts from, made once per process and copied for each test:
    writing the four objects costs 0.3-0.5 s (SoftHSM writes and encrypts a file for each),
    the director's and the CA's RSA keys as much again; copying the directory, milliseconds."""
    global _template
    if _template is None:
        home = factory.mktemp("softhsm-template")
        (home / "tokens").mkdir()
        conf = _conf(home)
        authority = TestAuthority.create()
        director = authority.issue("Nguyễn Văn An", organisation=ORGANISATION)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SOFTHSM2_CONF", str(conf))
            _init_token(conf, TOKEN_LABEL, USER_PIN, SO_PIN)
            lib = pkcs11.lib(str(SOFTHSM_MODULE))
            lib.reinitialize()
            try:
                token = SoftHsmToken(
                    conf, home / "tokens", TOKEN_LABEL, USER_PIN, SO_PIN, authority, director, KEY_LABEL
                )
                token._lib = lib
                token.put(director, KEY_LABEL)
            finally:
                lib.finalize()
        _template = _Template(home / "tokens", authority, director)
    return _template


@pytest.fixture
def softhsm_token(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[SoftHsmToken]:
    """A fresh SoftHSM token labelled `TOKEN_LABEL` (PIN `USER_PIN`) in `tmp_path`, holding a
    test director's key and certificate under `KEY_LABEL` and the test CA's certificate: a
    copy of a token made once per process (`_made_template`), under a conf of its own."""
    assert request.node.get_closest_marker("processes"), "a test on a SoftHSM token is marked `processes`"
    template = _made_template(tmp_path_factory)
    home = tmp_path / "softhsm"
    shutil.copytree(template.tokens, home / "tokens")
    conf = _conf(home)
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    lib = pkcs11.lib(str(SOFTHSM_MODULE))
    lib.reinitialize()  # reads this test's conf and finds its token (see the module's docstring)
    try:
        yield SoftHsmToken(
            conf,
            home / "tokens",
            TOKEN_LABEL,
            USER_PIN,
            SO_PIN,
            template.authority,
            template.director,
            KEY_LABEL,
            _lib=lib,
        )
    finally:
        lib.finalize()  # the next pkcs11.lib(SOFTHSM_MODULE) initialises again, under its own SOFTHSM2_CONF
