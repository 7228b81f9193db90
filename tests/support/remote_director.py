"""A signing folder whose director signs on the phone at the fake SmartCA-shaped provider
(tests/support/fake_remote_signer.py) and whose agency seals with a PKCS#12 file, all from a test
CA: the signing file (approvals/signing/signers.py) as production writes one for VNPT SmartCA,
used in process (tests/api/test_remote_director.py) and by the e2e stack's processes
(tests/support/stack.py), whose consolidated reports the director then confirms on the phone
(`confirm_on_the_phone`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from approvals.signing.test_images import draw_test_seal, draw_test_signature
from approvals.signing.test_pki import TestAuthority
from tests.support.fake_remote_signer import SP_ID, SP_PASSWORD, FakeRemoteSigner, Transaction

PHONE_USER = "001088000123"  # the director's account at the provider (a CCCD number)
DIRECTOR = "dost_director"
DIRECTOR_NAME = "Nông Thị Hạnh"
AGENCY_NAME = "Sở Khoa học và Công nghệ"


@dataclass(frozen=True)
class RemoteSigningFolder:
    signing_file: Path
    trust_root: Path  # the test CA's certificate (PEM)
    environ: dict[str, str]  # the secrets the signing file names


def remote_signing_folder(folder: Path, phone: FakeRemoteSigner) -> RemoteSigningFolder:
    """The director of the plan's lead agency (`dost_director`) signs at `phone`; the agency
    (`dost`) seals with a PKCS#12 file; both certificates from one new test CA."""
    folder.mkdir(parents=True, exist_ok=True)
    authority = TestAuthority.create()
    director = authority.issue(DIRECTOR_NAME, organisation=AGENCY_NAME)
    agency = authority.issue(AGENCY_NAME, organisation="UBND tỉnh Lạng Sơn")
    phone.add_user(PHONE_USER, director)
    root = folder / "root.pem"
    root.write_bytes(authority.identity.certificate_pem())
    (folder / "agency.p12").write_bytes(agency.pkcs12(b"agency-pw"))
    (folder / "signature.png").write_bytes(draw_test_signature(DIRECTOR_NAME))
    (folder / "seal.png").write_bytes(draw_test_seal(AGENCY_NAME))
    path = folder / "signing.yaml"
    path.write_text(
        f"""directors:
  {DIRECTOR}:
    kind: remote
    base_url: {phone.base_url}
    user_id: '{PHONE_USER}'
    client_id: {SP_ID}
    secret_env: SCA_SECRET
    image: {folder / "signature.png"}
agencies:
  dost: {{kind: pkcs12, file: {folder / "agency.p12"}, password_env: AGENCY_PW, image: {folder / "seal.png"}}}
trust_roots: [{root}]
""",
        encoding="utf-8",
    )
    return RemoteSigningFolder(path, root, {"SCA_SECRET": SP_PASSWORD, "AGENCY_PW": "agency-pw"})


def asked_on_the_phone(phone: FakeRemoteSigner, year: int, timeout: float = 120.0) -> Transaction:
    """The request the director's phone shows for the report of `year`, once it arrives."""
    return phone.wait_for(lambda t: t.user_id == PHONE_USER and t.description.endswith(f"năm {year}"), timeout=timeout)
