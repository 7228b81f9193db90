"""The approval page itself: its weight and its (absent) external references, the other
approvers and the stage summary, and English from the catalogue, chosen by `?lang=en` or by
the official's language setting."""

from __future__ import annotations

import html
import re

import pytest

from approvals.i18n import catalogue
from service.web import MESSAGES
from tests.service.helpers import decisions_of, open_direct_request, request_snapshot
from tests.support import local_http

pytestmark = pytest.mark.e2e

MAX_PAGE_BYTES = 30 * 1024
ATTRIBUTE_URL = re.compile(
    r"""\b(?:src|href|action|srcset|poster|data|formaction|xlink:href)\s*=\s*["']?([^"'\s>]*)""", re.IGNORECASE
)
PAGE_KEYS = [
    "app.name",
    "approval.heading",
    "label.summary",
    "label.agency",
    "label.due",
    "label.policy",
    "label.other_approvers",
    "policy.all",
    "status.pending",
    "label.comment",
    "choose",
    "outcome.approve",
    "outcome.reject",
    "outcome.request_changes",
    "confirm",
    "confirm.approve",
    "confirm.reject",
    "confirm.request_changes",
    "confirm.note",
    "language.switch",
]


def _no_external_references(page: str) -> None:
    for value in ATTRIBUTE_URL.findall(page):
        assert not re.match(r"^(?:[a-z][a-z0-9+.-]*:|//)", value, re.IGNORECASE), f"external reference {value!r}"
        # The links away are the official's own problem form on this site ("Báo cáo vướng mắc") and
        # the form that opens their queue ("Việc chờ đồng chí", under the page's own link).
        assert (
            value == ""
            or value.startswith(("?", "#"))
            or re.fullmatch(r"/p/[A-Za-z0-9_.-]+", value)
            or re.fullmatch(r"[A-Za-z0-9_-]{43}/queue(?:\?lang=(?:vi|en))?", value)
        ), f"reference away from the page: {value!r}"
    assert not re.search(r"https?:|//[a-z0-9]", re.sub(r"<style>.*?</style>", "", page, flags=re.DOTALL), re.IGNORECASE)
    style = re.search(r"<style>(.*?)</style>", page, re.DOTALL).group(1)
    assert "url(" not in style and "@import" not in style and "@font-face" not in style
    assert "<script" not in page and "<link" not in page and "<img" not in page and "<iframe" not in page


def _texts(page: str) -> str:
    return html.unescape(page)


def _check_language(page: str, language: str) -> None:
    c = catalogue(MESSAGES)
    other = "vi" if language == "en" else "en"
    text = _texts(page)
    assert f'<html lang="{language}">' in page
    for key in PAGE_KEYS:
        assert c.text(key, language) in text, f"{key} is not in {language}"
        if c.text(key, other) != c.text(key, language):
            assert c.text(key, other) not in text, f"{key} appears in {other} on the {language} page"


def test_page_weight_others_summary_and_english(stack):
    opened = open_direct_request(
        stack,
        f"{stack.year(14)}-page",
        cycle_kind="annual",
        stage_id="dic_direction",
        policy="all",
        extra=(("ppc_vice_chair", "ppc.vice_chair"), ("dost_coordinator", "lead_agency.coordinator")),
    )
    director = opened.link("dcst_director")
    coordinator = opened.link("dost_coordinator")

    page = local_http.get(director)
    assert page.status_code == 200
    body = page.text
    text = _texts(body)
    # The stage, its summary, the rule, and the other approvers with their status.
    assert "1. Định hướng truyền thông của năm (chủ đề, kênh, lịch)" in text
    assert "Cơ quan định hướng báo chí trình định hướng tuyên truyền năm" in text
    assert "Tất cả phải đồng ý" in text
    others = re.search(r'<ul class="people">(.*?)</ul>', body, re.DOTALL).group(1)
    assert re.search(
        r"Dương Xuân Huyên<small>Phó Chủ tịch UBND tỉnh[^<]*</small></span><span class=\"pill pending\">"
        r"Chưa có ý kiến",
        others,
    )
    assert "Vi Thị Lan" in others and "Đoàn Thị Bích" not in others  # the reader is not among the others

    # Page weight: the whole page, inline CSS included, and no reference to anywhere else.
    assert len(page.content) <= MAX_PAGE_BYTES, len(page.content)
    _no_external_references(body)
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    _check_language(body, "vi")

    # The coordinator's language is English: her page is in English without asking.
    page = local_http.get(coordinator)
    assert page.status_code == 200 and len(page.content) <= MAX_PAGE_BYTES
    _check_language(page.text, "en")
    text = _texts(page.text)
    assert "1. The year's communication orientation (themes, channels, calendar)" in text
    assert "The agency that orients the press submits the year's orientation" in text
    assert "For Vi Thị Lan (" in text and 'href="?lang=vi"' in page.text
    _no_external_references(page.text)
    # ... and she can switch to Vietnamese; the director can switch to English.
    _check_language(local_http.get(coordinator + "?lang=vi").text, "vi")
    _check_language(local_http.get(director + "?lang=en").text, "en")
    assert '<html lang="vi">' in local_http.get(director + "?lang=fr").text  # unknown languages: the default

    # Errors speak her language too, and a re-rendered long comment keeps the page light.
    missing = local_http.post(coordinator, data={"comment": "ý" * 4000, "lang": "en"})
    assert missing.status_code == 422 and "Please choose Approve, Reject or Request changes." in missing.text
    assert len(missing.content) <= MAX_PAGE_BYTES, len(missing.content)
    no_comment = local_http.post(coordinator, data={"outcome": "reject", "comment": " ", "lang": "en"})
    assert no_comment.status_code == 422 and "Please write a comment" in no_comment.text

    done = local_http.post(coordinator, data={"outcome": "approve", "comment": "Agreed.", "lang": "en"})
    assert done.status_code == 200 and "Decision recorded" in done.text and "“Approve”" in done.text
    _no_external_references(done.text)

    # The director now sees the coordinator's status; the request waits for everyone (policy all).
    page = local_http.get(director)
    others = re.search(r'<ul class="people">(.*?)</ul>', page.text, re.DOTALL).group(1)
    assert re.search(r"Vi Thị Lan<small>[^<]+</small></span><span class=\"pill decided\">Đã cho ý kiến", others)
    assert re.search(r"Dương Xuân Huyên<small>[^<]+</small></span><span class=\"pill pending\">Chưa có ý kiến", others)
    english = _texts(local_http.get(director + "?lang=en").text)
    assert "Decided" in english and "No decision yet" in english and "Every approver must agree" in english
    assert request_snapshot(stack, opened.request_id)["request_status"] == "pending"
    assert decisions_of(stack, opened.request_id) == [("dost_coordinator", "approve", "Agreed.")]


def test_every_page_text_has_both_languages():
    c = catalogue(MESSAGES)
    assert all(set(texts) == {"vi", "en"} and texts["vi"] and texts["en"] for texts in c.messages.values())
    for key in ("too_large.title", "too_many.title", "bad_request.title", "error.comment_too_long"):
        assert c.text(key, "vi") != c.text(key, "en")
