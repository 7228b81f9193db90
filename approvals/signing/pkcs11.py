"""Signing with a key on a PKCS#11 token or HSM (issue 24): the USB tokens Vietnamese
certification authorities issue (VNPT-CA, Viettel-CA, the Government's specialised CA), or an
HSM on the signing host. The key never leaves the token: pyHanko's `PKCS11Signer` asks the
token to sign each digest.

    with open_pkcs11_signer(module=Path("/usr/lib/…/libeTPkcs11.so"), token_label="SO KHCN",
                            key_label="director", pin=os.environ["…"]) as signer:
        signers.sign_pdf(pdf, metadata, signer=signer)

The key and its certificate are found by one label, `key_label` (the certificate's label, as
the CA's tool writes both); the certificates above it on the token are embedded with it.

Before anything is signed, each fault gets an error a provincial IT person can act on:
the module missing or not a PKCS#11 library, the token not plugged in (naming the tokens that
are), a wrong or locked PIN, no key or certificate under the label, a key that does not match
its certificate, a certificate expired or not yet valid. `check_pkcs11_signer` runs the same
checks and closes again, so that a service fails at start, not at the first report.

A wrong PIN is never retried here: a token locks its PIN after a few wrong tries (often 3 to
10), and only the token's SO PIN or the certification authority can unlock it. A caller must
not retry a `SignerLocked` either.

One signature at a time per token in a process: PKCS#11 logs the whole process in and out of a
token, not one session (a second login fails with CKR_USER_ALREADY_LOGGED_IN, and closing one
session logs the others out). A second `open_pkcs11_signer` on a token in use raises
`SignerUnavailable` (busy) at once, rather than waiting or breaking the first.

python-pkcs11 loads each module once per process (`pkcs11.lib`, cached by its path as given),
so give the same path every time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pkcs11
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from pkcs11 import Attribute, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11
from pyhanko.sign.pkcs11 import PKCS11Signer

from approvals.signing.errors import SignerLocked, SignerUnavailable, SigningRefused

_IN_USE: dict[tuple[str, str], threading.Lock] = {}
_IN_USE_GUARD = threading.Lock()
_CERTIFICATES = {Attribute.CLASS: ObjectClass.CERTIFICATE}

# A token gone or failing: come back once it is plugged in again.
_TOKEN_GONE = (p11.DeviceRemoved, p11.TokenNotPresent, p11.TokenNotRecognised, p11.DeviceError, p11.DeviceMemory)


@contextlib.contextmanager
def open_pkcs11_signer(*, module: Path, token_label: str, key_label: str, pin: str) -> Iterator[PKCS11Signer]:
    """A pyHanko signer for the key and certificate labelled `key_label` on the token labelled
    `token_label`, logged in with `pin`; the session is closed (and logged out) on exit.

    Raises `SignerUnavailable` (module missing or unloadable, token absent or busy),
    `SignerLocked` (PIN wrong, locked, expired or missing) or `SigningRefused` (no such key or
    certificate, a key that does not match its certificate, a certificate outside its
    validity dates), all before the signer is handed out."""
    where = f"token '{token_label}'"
    with _one_at_a_time(module, token_label):
        token = _find_token(_load(module), module, token_label)
        session = _log_in(token, where, pin)
        try:
            certificate, chain = _signing_certificate(session, where, key_label)
            _check_validity(certificate, where, key_label)
            signer = PKCS11Signer(
                session,
                cert_label=key_label,
                key_label=key_label,
                signing_cert=_asn1(certificate),
                ca_chain=[_asn1(c) for c in chain],
                other_certs_to_pull=(),  # the chain is given: pull nothing else from the token
            )
            try:
                yield signer
            except _TOKEN_GONE as error:
                raise SignerUnavailable(
                    f"The {where} was removed or failed while signing ({_describe(error)}): "
                    "plug it in again and retry; the signature was not made."
                ) from error
        finally:
            with contextlib.suppress(p11.PKCS11Error):  # a token pulled out has no session left to close
                session.close()


def check_pkcs11_signer(*, module: Path, token_label: str, key_label: str, pin: str) -> x509.Certificate:
    """Open the signer as `open_pkcs11_signer` does, find the key as pyHanko will, and close
    again: for a service's start, so that a wrong PIN or an expired certificate stops it there.
    Returns the signer's certificate (to log who will sign, and until when)."""
    with open_pkcs11_signer(module=module, token_label=token_label, key_label=key_label, pin=pin) as signer:
        return x509.load_der_x509_certificate(signer.signing_cert.dump())


@contextlib.contextmanager
def _one_at_a_time(module: Path, token_label: str) -> Iterator[None]:
    with _IN_USE_GUARD:
        lock = _IN_USE.setdefault((str(module), token_label), threading.Lock())
    if not lock.acquire(blocking=False):
        raise SignerUnavailable(
            f"Token '{token_label}' is busy with another signature in this process: try again when it finishes."
        )
    try:
        yield
    finally:
        lock.release()


def _load(module: Path) -> Any:
    if not module.is_file():
        raise SignerUnavailable(
            f"The PKCS#11 module {module} does not exist: install the token's driver (its vendor's PKCS#11 "
            "library) or correct the module path in the configuration."
        )
    try:
        return pkcs11.lib(str(module))
    except p11.PKCS11Error as error:
        raise SignerUnavailable(
            f"{module} could not be loaded as a PKCS#11 module ({_describe(error)}): give the path of the token "
            "vendor's PKCS#11 library (a .so file that exports C_GetFunctionList)."
        ) from error


def _find_token(lib: Any, module: Path, token_label: str) -> pkcs11.Token:
    found: list[pkcs11.Token] = []
    present: list[str] = []
    try:
        for slot in lib.get_slots(token_present=True):
            try:
                token = slot.get_token()
            except (p11.TokenNotPresent, p11.TokenNotRecognised):
                continue
            if not token.flags & TokenFlag.TOKEN_INITIALIZED:
                continue  # an empty slot's blank token (SoftHSM always offers one)
            present.append(token.label)
            if token.label == token_label:
                found.append(token)
    except p11.PKCS11Error as error:
        raise SignerUnavailable(
            f"The PKCS#11 module {module} could not list its tokens ({_describe(error)})."
        ) from error
    if not found:
        there = ", ".join(f"'{label}'" for label in sorted(present, key=str.casefold)) if present else "none"
        raise SignerUnavailable(
            f"No token labelled '{token_label}' is plugged in (module {module}); the tokens present are: {there}. "
            "Plug in the signing token, or correct the token label in the configuration."
        )
    if len(found) > 1:
        raise SignerUnavailable(
            f"{len(found)} tokens labelled '{token_label}' are plugged in (module {module}): leave only the signing "
            "token plugged in."
        )
    return found[0]


def _log_in(token: pkcs11.Token, where: str, pin: str) -> pkcs11.Session:
    if not pin:
        raise SignerLocked(f"No PIN was given for {where}: set it in the environment; it is never read from a file.")
    if token.flags & TokenFlag.USER_PIN_LOCKED:
        raise SignerLocked(_locked(where))  # without trying: a PIN is no use on a locked token
    try:
        return token.open(user_pin=pin)
    except p11.PinIncorrect as error:
        raise SignerLocked(_wrong_pin(where, _flags_now(token))) from error
    except p11.PinLocked as error:
        raise SignerLocked(_locked(where)) from error
    except (p11.PinLenRange, p11.PinInvalid) as error:
        raise SignerLocked(
            f"The token refused the PIN for {where} as malformed (too short, too long or a character it does not "
            "accept): check the PIN set in the environment."
        ) from error
    except p11.PinExpired as error:
        raise SignerLocked(
            f"The PIN of {where} has expired: change it with the token's own tool, then set the new one in the "
            "environment."
        ) from error
    except p11.UserAlreadyLoggedIn as error:
        raise SignerUnavailable(
            f"{where.capitalize()} is already in use by another program in this process: try again when it finishes."
        ) from error
    except p11.PKCS11Error as error:
        raise SignerUnavailable(f"Could not open a session on {where} ({_describe(error)}).") from error


def _flags_now(token: pkcs11.Token) -> TokenFlag:
    """The token's flags after a failed login (its counters changed): the token read again."""
    try:
        return token.slot.get_token().flags
    except p11.PKCS11Error:
        return token.flags


def _wrong_pin(where: str, flags: TokenFlag) -> str:
    message = f"Wrong PIN for {where}: the token refused it."
    if flags & TokenFlag.USER_PIN_LOCKED:
        return message + " The token has now locked its PIN. " + _unlock_hint()
    if flags & TokenFlag.USER_PIN_FINAL_TRY:
        message += " One more wrong PIN will lock the token."
    elif flags & TokenFlag.USER_PIN_COUNT_LOW:
        message += " The token counts wrong PINs and locks after a few more."
    return message + " Correct the PIN set in the environment before trying again; do not retry with the same one."


def _locked(where: str) -> str:
    return f"The PIN of {where} is locked after too many wrong PINs; it will not sign. " + _unlock_hint()


def _unlock_hint() -> str:
    return "Unlock it with the token's SO PIN in its vendor's tool, or ask the certification authority to."


def _signing_certificate(
    session: pkcs11.Session, where: str, key_label: str
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """The certificate labelled `key_label`, after checking that its private key is there, may
    sign and matches it; and the certificates above it on the token, nearest first."""
    keys = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: key_label}))
    found = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: key_label}))
    if not keys:
        labels = _labels(session, ObjectClass.PRIVATE_KEY)
        raise SigningRefused(
            f"No private key labelled '{key_label}' on {where}; the keys on it are labelled: {labels}. "
            "Correct the key label in the configuration."
        )
    if not found:
        labels = _labels(session, ObjectClass.CERTIFICATE)
        raise SigningRefused(
            f"No certificate labelled '{key_label}' on {where} (the key is there); the certificates on it are "
            f"labelled: {labels}. Write the key's certificate to the token under the key's label."
        )
    if len(keys) > 1 or len(found) > 1:
        raise SigningRefused(
            f"{len(keys)} private keys and {len(found)} certificates are labelled '{key_label}' on {where}: "
            "give the signing key and its certificate a label of their own."
        )
    key = keys[0]
    if not _attribute(key, Attribute.SIGN, default=True):
        raise SigningRefused(f"The key labelled '{key_label}' on {where} is not allowed to sign (CKA_SIGN is false).")
    certificate = x509.load_der_x509_certificate(found[0][Attribute.VALUE])
    public = certificate.public_key()
    modulus = _attribute(key, Attribute.MODULUS, default=None)
    if (
        isinstance(public, rsa.RSAPublicKey)
        and modulus is not None
        and int.from_bytes(modulus) != public.public_numbers().n
    ):
        raise SigningRefused(
            f"The certificate labelled '{key_label}' on {where} ({_who(certificate)}) is not the certificate of the "
            "key with that label: write the key's own certificate to the token (a renewed certificate needs its "
            "new key)."
        )
    others = [x509.load_der_x509_certificate(c[Attribute.VALUE]) for c in session.get_objects(_CERTIFICATES)]
    return certificate, _chain(certificate, others)


def _attribute(obj: Any, attribute: Attribute, *, default: Any) -> Any:
    try:
        return obj[attribute]
    except (p11.AttributeTypeInvalid, p11.AttributeSensitive):
        return default


def _labels(session: pkcs11.Session, kind: ObjectClass) -> str:
    labels = sorted(
        {str(_attribute(o, Attribute.LABEL, default="")) for o in session.get_objects({Attribute.CLASS: kind})}
    )
    return ", ".join(f"'{label}'" for label in labels) if labels else "none"


def _chain(certificate: x509.Certificate, candidates: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    by_subject = {c.subject: c for c in candidates}
    chain: list[x509.Certificate] = []
    current = certificate
    while current.issuer != current.subject and (issuer := by_subject.get(current.issuer)) and issuer not in chain:
        chain.append(issuer)
        current = issuer
    return chain


def _check_validity(certificate: x509.Certificate, where: str, key_label: str) -> None:
    now = dt.datetime.now(dt.UTC)
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    dates = f"valid from {_when(start)} to {_when(end)}"
    if now > end:
        raise SigningRefused(
            f"The certificate of {_who(certificate)} (key '{key_label}' on {where}) expired on {_when(end)} ({dates}): "
            "nothing was signed. Renew it with the certification authority and write the new one to the token."
        )
    if now < start:
        raise SigningRefused(
            f"The certificate of {_who(certificate)} (key '{key_label}' on {where}) is not valid until {_when(start)} "
            f"({dates}): nothing was signed. Check the signing host's clock, or wait until that date."
        )


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _who(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


def _describe(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
