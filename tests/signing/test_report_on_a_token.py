"""The report signed by a director whose key is on a PKCS#11 token, through the one signer
interface (`open_signer` with a `pkcs11` configuration, the PIN from the environment), as the
signing file configures it: valid and trusted; a wrong PIN in the environment is SignerLocked
before anything is signed."""

from __future__ import annotations

import pytest

from approvals.signing.backends import Pkcs11Signer, open_signer
from approvals.signing.errors import SignerLocked
from approvals.signing.signatures import sign_as_director
from approvals.signing.verification import Verdict, verify
from tests.support.softhsm import SoftHsmToken, softhsm_token  # noqa: F401  (the fixture)


def _configured(token: SoftHsmToken) -> Pkcs11Signer:
    return Pkcs11Signer(module=token.module, token_label=token.label, key_label=token.key_label, pin_env="DIRECTOR_PIN")


def test_the_report_signed_on_the_directors_token_is_valid(softhsm_token, report, signing_images):  # noqa: F811
    with open_signer(_configured(softhsm_token), {"DIRECTOR_PIN": softhsm_token.pin}) as signer:
        signed = sign_as_director(report.pdf, signer, layout=report.layout, image=signing_images["signature"])
    (check,) = verify(signed, trust_roots=[softhsm_token.authority.identity.certificate_der()])
    assert check.verdict is Verdict.valid and check.intact and check.trusted
    assert check.fingerprint == softhsm_token.identity.fingerprint  # the token's key signed


def test_a_wrong_pin_in_the_environment_signs_nothing(softhsm_token, report):  # noqa: F811
    with pytest.raises(SignerLocked), open_signer(_configured(softhsm_token), {"DIRECTOR_PIN": "000000"}):
        pytest.fail("a signer was opened with a wrong PIN")
