"""The signing file (issue 24, 'production fails clearly'): each fault named with its file and
where in it; a key that cannot be opened named at the worker's start; production refuses to
start without one; development's test signers share one test CA across processes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from approvals.config import PACKAGED_PLAN, Environment, Settings
from approvals.errors import InvalidInput
from approvals.plan import load_plan
from approvals.signing.signers import load_signing_file, problems_with, signing_problems
from approvals.signing.test_pki import TEST_MARK, TestAuthority
from approvals.signing.test_signers import TestSigners

PLAN = load_plan(PACKAGED_PLAN)


def _file(tmp_path, text: str):
    path = tmp_path / "signing.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _a_director_and_agency(tmp_path, *, password_env="DIRECTOR_PW", official="dost_director", agency="dost"):
    authority = TestAuthority.create()
    (tmp_path / "root.pem").write_bytes(authority.identity.certificate_pem())
    (tmp_path / "director.p12").write_bytes(authority.issue("Nông Thị Hạnh", organisation="Sở KH&CN").pkcs12(b"right"))
    (tmp_path / "signature.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return _file(
        tmp_path,
        f"""
directors:
  {official}:
    kind: pkcs12
    file: {tmp_path / "director.p12"}
    password_env: {password_env}
    image: {tmp_path / "signature.png"}
agencies:
  {agency}:
    kind: pkcs12
    file: {tmp_path / "director.p12"}
    password_env: {password_env}
    image: {tmp_path / "seal.png"}
trust_roots: [{tmp_path / "root.pem"}]
""",
    )


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("directors: [", "not YAML"),
        ("directors: {}\n", "trust_roots"),  # no roots: nothing could be checked
        ("trust_roots: [r.pem]\nsealers: {}\n", "sealers"),  # a misspelt part
        ("trust_roots: [r.pem]\ndirectors:\n  x:\n    kind: usb\n", "directors.x"),
        (
            "trust_roots: [r.pem]\ndirectors:\n  x:\n    kind: pkcs12\n    file: a.p12\n    password_env: 'a b'\n",
            "password_env",
        ),
    ],
)
def test_a_faulty_signing_file_is_refused_naming_the_file_and_where(tmp_path, text, named):
    path = _file(tmp_path, text)
    with pytest.raises(InvalidInput) as refused:
        load_signing_file(path, environ={})
    assert str(path) in str(refused.value) and named in str(refused.value)


def test_what_does_not_fit_the_plan_is_named(tmp_path):
    path = _a_director_and_agency(tmp_path, official="nobody_here", agency="no_agency")
    found = problems_with(load_signing_file(path, environ={}), PLAN)
    assert any("directors.nobody_here: no such official" in p for p in found), found
    assert any("agencies.no_agency: no such agency" in p for p in found), found
    assert any("agencies.no_agency.image: no PNG" in p for p in found), found  # the seal's file is missing
    assert not any("directors.nobody_here.image" in p for p in found)  # the signature's is there


def test_the_worker_start_check_names_a_wrong_password_and_a_missing_one(tmp_path, monkeypatch):
    path = _a_director_and_agency(tmp_path)
    settings = Settings(signing_file=path, data_dir=tmp_path)
    monkeypatch.setenv("DIRECTOR_PW", "wrong")
    wrong = signing_problems(settings, PLAN, open_keys=True)
    assert any("directors.dost_director" in p and "wrong password" in p for p in wrong), wrong
    closed = signing_problems(settings, PLAN, open_keys=False)  # /readyz reads the file, opens no key
    assert not any("wrong password" in p for p in closed), closed
    monkeypatch.delenv("DIRECTOR_PW")
    missing = signing_problems(settings, PLAN, open_keys=True)
    assert any("DIRECTOR_PW" in p for p in missing), missing
    monkeypatch.setenv("DIRECTOR_PW", "right")
    assert signing_problems(settings, PLAN, open_keys=True) == [
        f"{path}: agencies.dost.image: no PNG at {tmp_path / 'seal.png'}"
    ]


def test_a_remote_signers_secret_is_checked_at_start_without_calling_the_provider(tmp_path, monkeypatch):
    path = _file(
        tmp_path,
        "trust_roots: [r.pem]\ndirectors:\n  dost_director:\n    kind: remote\n    base_url: http://127.0.0.1:9/sca\n"
        "    user_id: '0912345678'\n    client_id: kehoach\n    secret_env: SCA_SECRET\n",
    )
    monkeypatch.delenv("SCA_SECRET", raising=False)
    settings = Settings(signing_file=path, data_dir=tmp_path)
    found = signing_problems(settings, PLAN, open_keys=True)
    assert any("directors.dost_director" in p and "set SCA_SECRET" in p for p in found), found
    monkeypatch.setenv("SCA_SECRET", "s")  # nothing listens on port 9: the provider is not called at start
    assert not any("SCA_SECRET" in p for p in signing_problems(settings, PLAN, open_keys=True))


def test_production_will_not_start_without_a_signing_file(tmp_path):
    with pytest.raises(ValidationError, match="KEHOACH_SIGNING_FILE"):
        Settings(environment=Environment.production, link_secret="s" * 48, data_dir=tmp_path)
    Settings(environment=Environment.production, link_secret="s" * 48, signing_file=tmp_path / "s.yaml")


def test_test_signers_share_one_ca_across_processes_and_say_they_are_tests(tmp_path):
    first, second = TestSigners(tmp_path, PLAN), TestSigners(tmp_path, PLAN)  # the worker and the web service
    director = first.director("dost_director")
    assert second.trust_roots() == first.trust_roots()
    assert second.director("dost_director") == director and director.image is not None and director.image.is_file()
    from cryptography.hazmat.primitives.serialization import pkcs12

    _, certificate, _ = pkcs12.load_key_and_certificates(
        director.file.read_bytes(), first.environ()[director.password_env].encode()
    )
    assert certificate is not None and TEST_MARK in certificate.subject.rfc4514_string()
    assert PLAN.official("dost_director").name in certificate.subject.rfc4514_string()
