"""Who holds a signer's key, configured per signer (the director, the agency), behind one
interface: `open_signer(config, environ)` yields a pyHanko `Signer` whatever holds the key.

- `pkcs12`: a PKCS#12 file (development and tests), its password in an environment variable;
- `pkcs11`: a token or HSM through its PKCS#11 module, its PIN in an environment variable
  (`approvals.signing.pkcs11`);
- `remote`: a signing service the signer confirms on the phone (VNPT SmartCA and the like),
  its client secret in an environment variable; it signs through the remote path
  (`approvals.signing.remote`: the run waits for the confirmation), not through `open_signer`.

Passwords, PINs and secrets only ever come from the environment: a configuration names the
variable, never the value. A signer whose certificate is expired or not yet valid is refused
when it is opened, before anything is signed."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

from cryptography.hazmat.primitives.serialization import pkcs12
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field
from pyhanko.sign.signers import Signer, SimpleSigner

from approvals.signing.errors import SignerLocked, SignerUnavailable, SigningRefused
from approvals.signing.signatures import ensure_in_force

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Signer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    image: Path | None = Field(
        None,
        description="The PNG (transparent background) its signature shows: the director's signature in blue, "
        "or the agency's seal in red at its real size (its resolution recorded in the PNG).",
    )


class Pkcs12Signer(_Signer):
    kind: Literal["pkcs12"] = "pkcs12"
    file: Path = Field(description="The PKCS#12 file (.p12, .pfx) with the key, its certificate and chain.")
    password_env: str = Field(pattern=ENV_NAME, description="The name of the environment variable with its password.")


class Pkcs11Signer(_Signer):
    kind: Literal["pkcs11"] = "pkcs11"
    module: Path = Field(description="The token's PKCS#11 module (a .so file, from its vendor).")
    token_label: str = Field(min_length=1, description="The token's label.")
    key_label: str = Field(min_length=1, description="The label of the signing key (and its certificate) on it.")
    pin_env: str = Field(pattern=ENV_NAME, description="The name of the environment variable with the user PIN.")


class RemoteSigner(_Signer):
    kind: Literal["remote"] = "remote"
    base_url: AnyHttpUrl = Field(
        description="The remote signing provider's API, e.g. https://gwsca.vnpt.vn/sca/sp769/v1"
    )
    user_id: str = Field(min_length=1, description="The signer's account with the provider.")
    client_id: str = Field(min_length=1, description="kehoach's client id with the provider.")
    secret_env: str = Field(pattern=ENV_NAME, description="The name of the environment variable with its secret.")
    serial_number: str | None = Field(
        None, description="Which of the signer's certificates at the provider signs, when they hold more than one."
    )


SignerConfig = Annotated[Pkcs12Signer | Pkcs11Signer | RemoteSigner, Field(discriminator="kind")]


@contextmanager
def open_signer(config: SignerConfig, environ: Mapping[str, str]) -> Iterator[Signer]:
    """The signer's pyHanko `Signer`, open while the block runs (a token's session is closed after)."""
    if isinstance(config, Pkcs12Signer):
        yield _pkcs12(config, environ)
    elif isinstance(config, Pkcs11Signer):
        pin = _secret(environ, config.pin_env, f"the PIN of token {config.token_label!r}")
        try:  # when it is used: a PKCS#12 signer needs no PKCS#11 library
            open_pkcs11_signer = importlib.import_module("approvals.signing.pkcs11").open_pkcs11_signer
        except ImportError as error:
            raise SignerUnavailable(f"PKCS#11 signing is not available here: {error}") from error
        with open_pkcs11_signer(
            module=config.module, token_label=config.token_label, key_label=config.key_label, pin=pin
        ) as signer:
            ensure_in_force(signer)
            yield signer
    else:
        raise SigningRefused(
            f"the signer {config.user_id!r} signs remotely, confirming on the phone: its signature goes through "
            "the remote signing path (approvals.signing.remote), which waits for the confirmation, not open_signer"
        )


def _secret(environ: Mapping[str, str], name: str, what: str) -> str:
    value = environ.get(name)
    if not value:
        raise SignerLocked(f"{what} is not in the environment: set {name}")
    return value


def _pkcs12(config: Pkcs12Signer, environ: Mapping[str, str]) -> Signer:
    password = _secret(environ, config.password_env, f"the password of {config.file}").encode()
    try:
        data = config.file.read_bytes()
    except OSError as error:
        raise SigningRefused(f"the PKCS#12 file {config.file} cannot be read: {error.strerror or error}") from error
    try:
        key, certificate, _ = pkcs12.load_key_and_certificates(data, password)
    except ValueError as error:
        if "password" in str(error).lower():
            raise SignerLocked(
                f"wrong password for the PKCS#12 file {config.file} (the one in {config.password_env})"
            ) from error
        raise SigningRefused(f"{config.file} is not a PKCS#12 file: {error}") from error
    if key is None or certificate is None:
        raise SigningRefused(f"the PKCS#12 file {config.file} holds no key or no certificate")
    signer: Signer = SimpleSigner.load_pkcs12_data(data, other_certs=[], passphrase=password)
    ensure_in_force(signer)
    return signer
