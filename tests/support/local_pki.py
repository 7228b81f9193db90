"""A local PKI over HTTP for the signing tests: a root CA, the director's and the agency's
document-signing certificates, a timestamp authority (RFC 3161), an OCSP responder and a CRL,
all marked as tests. Certomancer (by pyHanko's author) issues the certificates from keys made
here, in a temporary folder, and its Animator serves the services; werkzeug's server runs it
in a thread of the test process (no process started: the fast tier keeps it).

The certificates name the services at the server's own address (their OCSP and CRL URLs), so
the server is bound first and the PKI built for its port."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import WSGIRequestHandler, make_server

ARCH = "kehoach"
TEST = "THỬ NGHIỆM - TEST"
PASSWORD = b"local-pki-password"
NAMES = {
    "root": {"common-name": f"Kehoach Local CA ({TEST})", "organization-name": f"kehoach ({TEST})"},
    "director": {"common-name": f"Nguyễn Thị Lấp Lánh Ánh ({TEST})", "organization-name": "Sở Khoa học và Công nghệ"},
    "agency": {"common-name": f"Sở Khoa học và Công nghệ ({TEST})", "organization-name": "UBND tỉnh Lạng Sơn"},
    "tsa": {"common-name": f"Kehoach Local TSA ({TEST})", "organization-name": f"kehoach ({TEST})"},
    "ocsp": {"common-name": f"Kehoach Local OCSP ({TEST})", "organization-name": f"kehoach ({TEST})"},
}


@dataclass(frozen=True)
class LocalPki:
    url: str  # http://127.0.0.1:PORT
    arch: Any  # certomancer's PKIArchitecture

    @property
    def tsa_url(self) -> str:
        return f"{self.url}/{ARCH}/tsa/tsa"

    @property
    def root(self) -> bytes:
        """The root CA's certificate, DER: the trust root to verify against."""
        return self.arch.get_cert("root").dump()

    def pkcs12(self, label: str) -> bytes:
        """`director` or `agency`: key, certificate and chain, encrypted with `PASSWORD`."""
        return self.arch.package_pkcs12(label, password=PASSWORD)


class _Late:
    """A WSGI app whose handler is given once the server's port is known."""

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # a line per OCSP, CRL and timestamp request is noise in a test's output


def _key(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _ext(name: str, critical: bool = False, **value: Any) -> dict[str, Any]:
    return {"id": name, "critical": critical, **value}


def _config(prefix: str, keys: Path) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    validity = {
        "valid-from": (now - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+0000"),
        "valid-to": (now + dt.timedelta(days=730)).strftime("%Y-%m-%dT%H:%M:%S+0000"),
    }

    def usage(*flags: str) -> dict[str, Any]:
        return _ext("key_usage", True, **{"smart-value": {"schema": "key-usage", "params": list(flags)}})

    def smart(name: str, schema: str, **params: Any) -> dict[str, Any]:
        return _ext(name, **{"smart-value": {"schema": schema, "params": params}})

    revocation = [  # where a verifier asks whether the certificate was revoked
        smart("crl_distribution_points", "crl-dist-url", **{"crl-repo-names": ["root"]}),
        smart("authority_information_access", "aia-urls", **{"ocsp-responder-names": ["root"]}),
    ]
    signing = usage("digital_signature", "non_repudiation")
    signer = {"issuer": "root", "validity": validity, "extensions": [signing, *revocation]}
    return {
        "external-url-prefix": prefix,
        "keysets": {ARCH: {"path-prefix": str(keys), "keys": {label: {"path": f"{label}.pem"} for label in NAMES}}},
        "pki-architectures": {
            ARCH: {
                "keyset": ARCH,
                "entity-defaults": {"country-name": "VN"},
                "entities": NAMES,
                "certs": {
                    "root": {
                        "issuer": "root",
                        "validity": validity,
                        "extensions": [
                            _ext("basic_constraints", True, value={"ca": True}),
                            usage("digital_signature", "key_cert_sign", "crl_sign"),
                        ],
                    },
                    "director": signer,
                    "agency": signer,
                    "tsa": {
                        "issuer": "root",
                        "validity": validity,
                        "extensions": [
                            usage("digital_signature"),
                            _ext("extended_key_usage", True, value=["time_stamping"]),
                            *revocation,
                        ],
                    },
                    "ocsp": {
                        "issuer": "root",
                        "validity": validity,
                        "extensions": [
                            usage("digital_signature"),
                            _ext("extended_key_usage", True, value=["ocsp_signing"]),
                            _ext("ocsp_no_check"),
                        ],
                    },
                },
                "services": {
                    "ocsp": {"root": {"for-issuer": "root", "responder-cert": "ocsp", "signing-key": "ocsp"}},
                    "crl-repo": {
                        "root": {"for-issuer": "root", "signing-key": "root", "simulated-update-schedule": "P30D"}
                    },
                    "time-stamping": {"tsa": {"signing-key": "tsa", "signing-cert": "tsa"}},
                },
            }
        },
    }


@pytest.fixture(scope="session")
def local_pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPki]:
    from certomancer.integrations.animator import Animator, AnimatorArchStore
    from certomancer.registry import CertomancerConfig

    keys = tmp_path_factory.mktemp("local-pki")
    for label in NAMES:
        _key(keys / f"{label}.pem")
    late = _Late()
    server = make_server("127.0.0.1", 0, late, threaded=True, request_handler=_Quiet)
    url = f"http://127.0.0.1:{server.server_port}"
    config = CertomancerConfig(_config(url, keys), key_search_dir=str(keys))
    late.app = Animator(AnimatorArchStore(config.pki_archs), with_web_ui=False)
    thread = threading.Thread(target=server.serve_forever, name="local-pki", daemon=True)
    thread.start()
    try:
        yield LocalPki(url, config.get_pki_arch(ARCH))
    finally:
        server.shutdown()
        thread.join()
