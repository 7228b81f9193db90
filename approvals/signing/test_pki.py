"""A test certification authority and the certificates it issues, every one marked as a test:
for `kehoach demo` (which signs with them, and says so) and for the suite. Never for a real
report: production signs with certificates from the agency's own certification authority.

    authority = TestAuthority.create()
    director = authority.issue("Nguyễn Văn An", organisation="Sở Khoa học và Công nghệ tỉnh Lạng Sơn")
    p12 = director.pkcs12(b"password")
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TEST_MARK = "THỬ NGHIỆM - TEST"  # in every name this module writes: nobody mistakes it for a real one
KEY_SIZE = 2048  # as Vietnamese public CAs issue (RSA 2048)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)


UPPER_BOUND = 64  # characters of a common or organisation name (RFC 5280, ub-common-name)


def _fit(text: str) -> str:
    return text if len(text) <= UPPER_BOUND else text[: UPPER_BOUND - 1] + "…"


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _fit(organisation)),
            x509.NameAttribute(NameOID.COMMON_NAME, _fit(common_name)),
        ]
    )


def _marked(name: str) -> str:
    """`name (THỬ NGHIỆM - TEST)`, the name shortened where both would pass the upper bound."""
    room = UPPER_BOUND - len(TEST_MARK) - 3
    return f"{name if len(name) <= room else name[: room - 1] + '…'} ({TEST_MARK})"


@dataclass(frozen=True)
class TestIdentity:
    """A key and its certificate, with the chain above it (the authority's certificate)."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate, as hex (how the audit log names a certificate)."""
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    def pkcs12(self, password: bytes | None) -> bytes:
        """Key, certificate and chain as a PKCS#12 file (what `SimpleSigner.load_pkcs12` reads)."""
        protection = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        return pkcs12.serialize_key_and_certificates(
            self.certificate.subject.rfc4514_string().encode(), self.key, self.certificate, self.chain, protection
        )

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def certificate_der(self) -> bytes:
        """DER, as pyHanko reads a trust root (`asn1crypto.x509.Certificate.load(der)`)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class TestAuthority:
    """A root CA of its own, marked as a test, that issues document-signing certificates."""

    identity: TestIdentity

    @classmethod
    def create(cls, name: str = f"Kehoach Test CA ({TEST_MARK})", *, now: dt.datetime | None = None) -> TestAuthority:
        now = now or dt.datetime.now(dt.UTC)
        key = _key()
        subject = _name(name, f"kehoach ({TEST_MARK})")
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(TestIdentity(key, certificate))

    @property
    def certificate(self) -> x509.Certificate:
        return self.identity.certificate

    def issue(
        self,
        common_name: str,
        *,
        organisation: str,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        extended_usage: list[x509.ObjectIdentifier] | None = None,
        extensions: list[x509.ExtensionType] | None = None,
    ) -> TestIdentity:
        """A document-signing certificate for `common_name` (valid from yesterday for two years
        unless told), its name marked as a test. `extended_usage` defaults to none (a document
        signature needs none); a timestamp authority passes `[ExtendedKeyUsageOID.TIME_STAMPING]`.
        `extensions` adds more (an OCSP or CRL address, for the suite's revocation checks)."""
        now = dt.datetime.now(dt.UTC)
        key = _key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(_marked(common_name), organisation))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(days=1))
            .not_valid_after(not_after or now + dt.timedelta(days=730))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,  # non-repudiation: a document signature (pyHanko#10)
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.identity.key.public_key()), critical=False
            )
        )
        if extended_usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage(extended_usage), critical=True)
        for extension in extensions or []:
            builder = builder.add_extension(extension, critical=False)
        certificate = builder.sign(self.identity.key, hashes.SHA256())
        return TestIdentity(key, certificate, [self.certificate])


TIME_STAMPING = ExtendedKeyUsageOID.TIME_STAMPING
