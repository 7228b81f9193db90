"""Who signs an issued report and which roots a signature must chain to.

Production reads them from the signing file (`KEHOACH_SIGNING_FILE`, YAML):

    directors:            # an official of the plan: how they sign a report they approve
      dost_director:
        kind: pkcs11
        module: /usr/lib/vnpt-ca/libvnptca.so
        token_label: "NGUYEN VAN AN"
        key_label: signing
        pin_env: SIGNER_PIN_DOST_DIRECTOR
        image: /etc/kehoach/signatures/dost_director.png
    agencies:             # an issuing agency of the plan: its signature, shown as its seal
      dost:
        kind: pkcs12
        file: /etc/kehoach/keys/dost.p12
        password_env: SIGNER_PASSWORD_DOST
        image: /etc/kehoach/seals/dost.png
    trust_roots: [/etc/kehoach/roots/root-ca.pem]
    timestamp_url: http://tsa.example.vn/tsa

Development and `kehoach demo` sign with generated test certificates instead
(`approvals.signing.test_signers`), marked as tests wherever they show.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from approvals.config import Settings
from approvals.errors import InvalidInput, KehoachError
from approvals.plan.schema import Plan
from approvals.signing.backends import RemoteSigner, SignerConfig, open_signer
from approvals.signing.errors import SigningRefused
from approvals.signing.test_signers import TestSigners


class Signers(Protocol):
    """What issuing a report needs to know about signing it."""

    test: bool  # test certificates (development, the demo): shown as such

    def director(self, official_id: str) -> SignerConfig: ...

    def agency(self, agency_id: str) -> SignerConfig: ...

    def trust_roots(self) -> list[bytes]: ...  # DER certificates

    def timestamp_url(self) -> str | None: ...

    def environ(self) -> dict[str, str]: ...  # where passwords and PINs are read


class SigningFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    directors: dict[str, SignerConfig] = Field(
        default_factory=dict, description="An official's id: how they sign a report they approve as its director."
    )
    agencies: dict[str, SignerConfig] = Field(
        default_factory=dict, description="An issuing agency's id: its signature, shown as its seal."
    )
    trust_roots: list[Path] = Field(
        min_length=1, description="The roots a signature must chain to (PEM or DER files): the CA's published roots."
    )
    timestamp_url: AnyHttpUrl | None = Field(
        None, description="The RFC 3161 timestamp authority the certification authority publishes."
    )


class ConfiguredSigners:
    """The signers of a signing file, with passwords and PINs from the process's environment."""

    test = False

    def __init__(self, config: SigningFile, *, source: Path, environ: dict[str, str]) -> None:
        self.config, self.source, self._environ = config, source, environ

    def director(self, official_id: str) -> SignerConfig:
        return _one(self.config.directors, official_id, "directors", self.source)

    def agency(self, agency_id: str) -> SignerConfig:
        return _one(self.config.agencies, agency_id, "agencies", self.source)

    def trust_roots(self) -> list[bytes]:
        return [read_certificate(path) for path in self.config.trust_roots]

    def timestamp_url(self) -> str | None:
        return str(self.config.timestamp_url) if self.config.timestamp_url else None

    def environ(self) -> dict[str, str]:
        return self._environ


def _one(table: dict[str, SignerConfig], key: str, part: str, source: Path) -> SignerConfig:
    found = table.get(key)
    if found is None:
        raise SigningRefused(f"{source}: no signer for {key!r} under {part}: the report cannot be signed and issued")
    return found


def read_certificate(path: Path) -> bytes:
    """A certificate file, PEM or DER, as DER."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InvalidInput(f"the certificate {path} cannot be read: {error.strerror or error}") from error
    try:
        certificate = (
            x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
        )
    except ValueError as error:
        raise InvalidInput(f"{path} is not a certificate (PEM or DER): {error}") from error
    return certificate.public_bytes(Encoding.DER)


def load_signing_file(path: Path, *, environ: dict[str, str]) -> ConfiguredSigners:
    """The signing file at `path`, checked: each fault named with where it lies."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InvalidInput(f"the signing file {path} cannot be read: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        raise InvalidInput(f"{path}: not YAML: {error}") from error
    try:
        config = TypeAdapter(SigningFile).validate_python(raw or {})
    except ValidationError as error:
        faults = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in error.errors())
        raise InvalidInput(f"{path}: {faults}") from error
    return ConfiguredSigners(config, source=path, environ=environ)


def problems_with(signers: ConfiguredSigners, plan: Plan) -> list[str]:
    """What in a signing file does not fit the plan, or cannot be read (for `kehoach check` and /readyz)."""
    found = []
    for official_id in signers.config.directors:
        if plan.official(official_id) is None:
            found.append(f"{signers.source}: directors.{official_id}: no such official in the plan")
    agencies = {agency.id for agency in plan.agencies}
    for agency_id in signers.config.agencies:
        if agency_id not in agencies:
            found.append(f"{signers.source}: agencies.{agency_id}: no such agency in the plan")
    for part, table in (("directors", signers.config.directors), ("agencies", signers.config.agencies)):
        for key, config in table.items():
            if config.image is None or not config.image.is_file():
                found.append(f"{signers.source}: {part}.{key}.image: no PNG at {config.image}")
    for path in signers.config.trust_roots:
        try:
            read_certificate(path)
        except InvalidInput as error:
            found.append(f"{signers.source}: trust_roots: {error}")
    return found


def signers_for(settings: Settings, plan: Plan) -> Signers:
    """The signing file's signers; in development without one, test signers in the data folder
    (production refuses to start without a signing file: `approvals.config`)."""
    if settings.signing_file is not None:
        return load_signing_file(settings.signing_file, environ=dict(os.environ))
    return TestSigners(settings.data_dir, plan)


def signing_problems(settings: Settings, plan: Plan, *, open_keys: bool) -> list[str]:
    """What keeps the configured signers from signing a report: the signing file's faults and,
    with `open_keys`, each key opened once (a wrong password or PIN, a token not plugged in, an
    expired certificate), as the worker checks at start. Nothing in development without a
    signing file (test signers are made when first needed)."""
    if settings.signing_file is None:
        return []
    try:
        signers = load_signing_file(settings.signing_file, environ=dict(os.environ))
    except KehoachError as error:
        return [str(error)]
    found = problems_with(signers, plan)
    if open_keys:
        for part, table in (("directors", signers.config.directors), ("agencies", signers.config.agencies)):
            for key, config in table.items():
                if isinstance(config, RemoteSigner):  # confirmed on the phone when it signs: its secret now
                    if not signers.environ().get(config.secret_env):
                        found.append(
                            f"{signers.source}: {part}.{key}: the remote signing provider's secret is not in the "
                            f"environment: set {config.secret_env}"
                        )
                    continue
                try:
                    with open_signer(config, signers.environ()):
                        pass
                except KehoachError as error:
                    found.append(f"{signers.source}: {part}.{key}: {error}")
    return found
