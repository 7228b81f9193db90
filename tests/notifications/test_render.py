"""Rendering of the email kinds, on the real templates and catalogue."""

from __future__ import annotations

import unicodedata

import pytest
from jinja2 import UndefinedError

from notifications.render import RenderedEmail, Renderer

NAME = "Nông Thị Hạnh"
NAME_NFD = unicodedata.normalize("NFD", NAME)
STAGE = "Phê duyệt kế hoạch năm"
CYCLE = "Năm 2027"
AGENCY = "Sở Khoa học và Công nghệ tỉnh Lạng Sơn"
LINK = "https://kehoach.example/a/Tok_en-123"

assert NAME_NFD != NAME  # the input really is decomposed


def approval_context(**overrides) -> dict:
    context = dict(
        title="Giám đốc",
        name=NAME_NFD,
        cycle=unicodedata.normalize("NFD", CYCLE),
        stage=unicodedata.normalize("NFD", STAGE),
        agency=unicodedata.normalize("NFD", AGENCY),
        due="17:00 ngày 29/11/2026 (giờ Việt Nam)",
        summary=unicodedata.normalize("NFD", "Tóm tắt nội dung"),
        link=LINK,
        problem="",
    )
    context.update(overrides)
    return context


def receipt_context(**overrides) -> dict:
    context = dict(
        outcome="approve",
        at="17:00 ngày 29/11/2026",
        stage=unicodedata.normalize("NFD", STAGE),
        cycle=unicodedata.normalize("NFD", CYCLE),
        comment=unicodedata.normalize("NFD", f"Đồng ý – {NAME}"),
        by_reply="",
    )
    context.update(overrides)
    return context


CONTEXTS = {"approval_request": approval_context, "receipt": receipt_context}
EXPECTED = {
    ("approval_request", "vi"): ("[Cần phê duyệt]", "Kính gửi"),
    ("approval_request", "en"): ("[Approval needed]", "Dear"),
    ("receipt", "vi"): ("[Đã ghi nhận]", "Hệ thống đã ghi nhận ý kiến «Đồng ý»"),
    ("receipt", "en"): ("[Recorded]", "Your decision “Approve”"),
}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def _parts(email: RenderedEmail) -> dict[str, str]:
    return {"subject": email.subject, "text": email.text, "html": email.html}


@pytest.mark.parametrize("language", ["vi", "en"])
@pytest.mark.parametrize("kind", ["approval_request", "receipt"])
def test_every_kind_and_language_renders_nfc(renderer, kind, language):
    email = renderer.render(kind, language, **CONTEXTS[kind]())
    subject_start, body_phrase = EXPECTED[(kind, language)]

    assert email.subject.startswith(subject_start)
    assert STAGE in email.subject
    for part, value in _parts(email).items():
        assert value.strip(), part
        assert unicodedata.is_normalized("NFC", value), part
    for part in ("text", "html"):
        body = getattr(email, part)
        assert body_phrase in body, part
        assert STAGE in body and CYCLE in body, part
        assert unicodedata.normalize("NFD", STAGE) not in body, part
    assert f'<html lang="{language}">' in email.html
    assert "\n" not in email.subject and "\r" not in email.subject

    if kind == "approval_request":
        for part in ("text", "html"):
            body = getattr(email, part)
            assert NAME in body, part
            assert NAME_NFD not in body, part
            assert AGENCY in body, part
        assert LINK in email.text
        assert f'href="{LINK}"' in email.html
    else:
        assert NAME in email.text and NAME in email.html  # via the comment


@pytest.mark.parametrize(
    "kind, missing",
    [
        ("approval_request", "link"),
        ("approval_request", "name"),
        ("approval_request", "agency"),
        ("approval_request", "summary"),
        ("receipt", "comment"),
        ("receipt", "outcome"),
        ("receipt", "at"),
    ],
)
def test_a_missing_context_variable_raises_undefined_error(renderer, kind, missing):
    context = CONTEXTS[kind]()
    del context[missing]
    with pytest.raises(UndefinedError):
        renderer.render(kind, "vi", **context)


def test_optional_summary_and_comment_may_be_empty(renderer):
    email = renderer.render("approval_request", "vi", **approval_context(summary=""))
    assert "Tóm tắt" not in email.text
    email = renderer.render("receipt", "en", **receipt_context(comment=""))
    assert "Comment" not in email.text and "Comment" not in email.html


@pytest.mark.parametrize(
    "language, outcome, understood",
    [
        ("vi", "approve", "Đã ghi nhận: Đồng ý"),
        ("vi", "reject", "Đã ghi nhận: Từ chối"),
        ("vi", "request_changes", "Đã ghi nhận: Yêu cầu chỉnh sửa"),
        ("en", "reject", "Recorded: Reject"),
    ],
)
def test_a_receipt_for_a_reply_says_first_what_was_understood(renderer, language, outcome, understood):
    by_reply = renderer.render("receipt", language, **receipt_context(outcome=outcome, by_reply="yes"))
    assert by_reply.text.startswith(understood) and f"<strong>{understood}</strong>" in by_reply.html
    assert f"Đồng ý – {NAME}" in by_reply.text  # and the comment, as on every receipt
    by_page = renderer.render("receipt", language, **receipt_context(outcome=outcome))
    assert understood not in by_page.text and understood not in by_page.html


@pytest.mark.parametrize("language", ["vi", "en"])
def test_html_escapes_a_script_in_a_name(renderer, language):
    evil = '<script>alert("x")</script>'
    email = renderer.render("approval_request", language, **approval_context(name=evil, summary=evil))
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert evil in email.text  # plain text is not HTML: left as written


def test_html_escapes_a_script_in_a_receipt_comment_and_in_the_title(renderer):
    evil = "<script>alert(1)</script>"
    email = renderer.render("receipt", "vi", **receipt_context(stage=evil, comment=evil))
    assert evil in email.subject  # the subject is a header, not HTML
    assert "<script>" not in email.html
    assert f"<title>{email.subject}</title>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
