"""Whether the trusted receiving host saw the sender authenticated (notifications.replies.authentication):
headers as Postfix's OpenDKIM/OpenDMARC, Gmail and Exchange write them, and forged ones below them."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from notifications.replies.authentication import (
    aligned,
    authenticate,
    parse_authentication_results,
    trusted_results,
)

MX = "mx.langson.gov.vn"
TRUSTED = [MX]


def reply(*results: str, sender: str = "Nguyễn Văn A <a@langson.gov.vn>") -> EmailMessage:
    """A reply whose Authentication-Results headers are `results`, top first (as the MXs added them)."""
    headers = "".join(f"Authentication-Results: {value}\r\n" for value in results)
    raw = (
        f"{headers}From: {sender}\r\nTo: duyet+tok@reply.langson.gov.vn\r\nSubject: Re: Bước 3\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nĐồng ý\r\n"
    )
    message = message_from_bytes(raw.encode(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


DMARC_PASS = f"{MX};\r\n\tdmarc=pass (p=reject dis=none) header.from=langson.gov.vn"
DKIM_PASS = (
    f"{MX} (amavisd-new); dkim=pass (2048-bit key; unprotected)\r\n"
    "\theader.d=langson.gov.vn header.i=@langson.gov.vn header.a=rsa-sha256 header.s=mail header.b=AbCd1234"
)
SPF_ONLY = f"{MX}; spf=pass smtp.mailfrom=langson.gov.vn"


def test_a_trusted_dmarc_pass_passes():
    verdict = authenticate(reply(DMARC_PASS), trusted_authserv_ids=TRUSTED)
    assert verdict.passed, verdict.reason
    assert verdict.reason == f"dmarc=pass for langson.gov.vn at {MX}"


def test_a_trusted_aligned_dkim_pass_passes():
    verdict = authenticate(reply(DKIM_PASS), trusted_authserv_ids=TRUSTED)
    assert verdict.passed, verdict.reason
    assert "dkim=pass d=langson.gov.vn" in verdict.reason


def test_the_authserv_id_is_compared_without_case():
    assert authenticate(reply(DMARC_PASS), trusted_authserv_ids=["MX.LangSon.gov.vn."]).passed


def test_dmarc_fail_fails_even_beside_a_dkim_pass():
    header = f"{MX}; dkim=pass header.d=langson.gov.vn; dmarc=fail (p=reject) header.from=langson.gov.vn"
    verdict = authenticate(reply(header), trusted_authserv_ids=TRUSTED)
    assert not verdict.passed
    assert verdict.reason == f"dmarc=fail at {MX}"


def test_a_forged_pass_below_a_trusted_fail_fails():
    trusted_fail = f"{MX}; dkim=fail header.d=langson.gov.vn; dmarc=fail header.from=langson.gov.vn"
    forged_elsewhere = "mx.google.com; dkim=pass header.d=langson.gov.vn; dmarc=pass header.from=langson.gov.vn"
    forged_same_id = f"{MX}; dkim=pass header.d=langson.gov.vn; dmarc=pass header.from=langson.gov.vn"
    for message in (reply(trusted_fail, forged_elsewhere), reply(trusted_fail, forged_same_id)):
        assert not authenticate(message, trusted_authserv_ids=TRUSTED).passed


def test_a_pass_from_an_untrusted_host_alone_fails():
    forged = "mx.google.com; dkim=pass header.d=langson.gov.vn; dmarc=pass header.from=langson.gov.vn"
    verdict = authenticate(reply(forged), trusted_authserv_ids=TRUSTED)
    assert not verdict.passed
    assert verdict.reason == "no Authentication-Results header from a trusted authserv-id"


def test_no_header_at_all_fails():
    assert not authenticate(reply(), trusted_authserv_ids=TRUSTED).passed


def test_no_trusted_host_configured_fails():
    assert not authenticate(reply(DMARC_PASS), trusted_authserv_ids=[]).passed


@pytest.mark.parametrize(
    "dkim",
    [
        "dkim=pass header.d=evil.example",
        "dkim=pass header.d=langson.gov.vn.evil.example",
        "dkim=pass header.d=vn",
        "dkim=pass header.i=@evil.example",
        "dkim=fail header.d=langson.gov.vn",
        "dkim=neutral header.d=langson.gov.vn",
    ],
)
def test_dkim_that_does_not_pass_for_the_from_domain_fails(dkim):
    verdict = authenticate(reply(f"{MX}; {dkim}"), trusted_authserv_ids=TRUSTED)
    assert not verdict.passed
    assert verdict.reason.startswith("no dmarc=pass nor DKIM aligned with langson.gov.vn")


def test_dmarc_pass_for_another_domain_fails():
    header = f"{MX}; dmarc=pass header.from=evil.example"
    assert not authenticate(reply(header), trusted_authserv_ids=TRUSTED).passed


def test_spf_alone_does_not_pass():
    assert not authenticate(reply(SPF_ONLY), trusted_authserv_ids=TRUSTED).passed


def test_a_from_of_several_addresses_fails():
    message = reply(DMARC_PASS, sender="a@langson.gov.vn, b@evil.example")
    assert authenticate(message, trusted_authserv_ids=TRUSTED).reason == "From does not name exactly one address"


@pytest.mark.parametrize(
    ("signing", "author", "expected"),
    [
        ("langson.gov.vn", "langson.gov.vn", True),
        ("LangSon.gov.vn", "langson.gov.vn", True),
        ("mail.langson.gov.vn", "langson.gov.vn", True),
        ("langson.gov.vn", "sotttt.langson.gov.vn", True),
        ("@langson.gov.vn", "langson.gov.vn", True),
        ("xlangson.gov.vn", "langson.gov.vn", False),
        ("langson.gov.vn.evil.example", "langson.gov.vn", False),
        ("vn", "langson.gov.vn", False),
        ("", "langson.gov.vn", False),
        # by the public suffix list: a suffix signs for no one under it, two agencies under one stay two
        ("gov.vn", "langson.gov.vn", False),
        ("com.vn", "congty.com.vn", False),
        ("caobang.gov.vn", "langson.gov.vn", False),
        ("sotc.langson.gov.vn", "sokhcn.langson.gov.vn", True),  # one organization: langson.gov.vn
        ("mail.baolangson.vn", "toasoan.baolangson.vn", True),
        ("evil.co.uk", "example.co.uk", False),
    ],
)
def test_relaxed_alignment(signing, author, expected):
    assert aligned(signing, author) is expected


def test_the_header_is_read_past_comments_quotes_and_folding():
    parsed = parse_authentication_results(
        'mx.langson.gov.vn 1 (a comment; with (nested) parentheses);\r\n\tdkim=pass (good "sig")'
        ' reason="signature ok; verified" header.d=langson.gov.vn header . s = "mail";'
        " spf=softfail smtp.mailfrom=x@evil.example; dmarc/1=PASS header.from=langson.gov.vn"
    )
    assert parsed is not None
    assert parsed.authserv_id == "mx.langson.gov.vn"
    assert [(r.method, r.result) for r in parsed.results] == [("dkim", "pass"), ("spf", "softfail"), ("dmarc", "pass")]
    assert parsed.results[0].properties == {"header.d": "langson.gov.vn", "header.s": "mail"}


def test_a_header_that_says_none():
    parsed = parse_authentication_results("mx.langson.gov.vn; none")
    assert parsed is not None and parsed.results == ()


def test_the_topmost_trusted_header_is_the_one_read():
    message = reply("mx.google.com; dmarc=pass", f"{MX}; dkim=fail", f"{MX}; dmarc=pass")
    header = trusted_results(message, TRUSTED)
    assert header is not None
    assert [(r.method, r.result) for r in header.results] == [("dkim", "fail")]
