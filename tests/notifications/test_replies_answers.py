"""The decision a reply's first line gives (notifications.replies.answers): each keyword with and
without its accents, in any case, and what is no keyword."""

from __future__ import annotations

import unicodedata

import pytest

from approvals.errors import InvalidInput
from approvals.i18n import catalogue
from approvals.statuses import Outcome
from notifications.render import MESSAGES
from notifications.replies.answers import (
    KEYWORDS,
    Answer,
    AnswerNotRecognised,
    ReplyCommentRequired,
    UnreadableReply,
    fold,
    read_answer,
)
from notifications.replies.quotes import cut_quote

TABLE = [
    ("Đồng ý", Outcome.approve, "Đồng ý"),
    ("Duyệt", Outcome.approve, "Đồng ý"),
    ("Approve", Outcome.approve, "Đồng ý"),
    ("Approved", Outcome.approve, "Đồng ý"),
    ("Từ chối", Outcome.reject, "Từ chối"),
    ("Reject", Outcome.reject, "Từ chối"),
    ("Chỉnh sửa", Outcome.request_changes, "Yêu cầu chỉnh sửa"),
    ("Yêu cầu chỉnh sửa", Outcome.request_changes, "Yêu cầu chỉnh sửa"),
    ("Request changes", Outcome.request_changes, "Yêu cầu chỉnh sửa"),
]


def test_the_table_covers_every_keyword():
    assert sorted(k for k, _, _ in TABLE) == sorted(KEYWORDS)


def _variants(keyword: str) -> list[str]:
    unaccented = fold(keyword)
    return [
        keyword,
        keyword.upper(),
        keyword.lower(),
        unaccented,
        unaccented.upper(),
        unicodedata.normalize("NFD", keyword),
    ]


@pytest.mark.parametrize(("keyword", "outcome", "label"), TABLE, ids=[k for k, _, _ in TABLE])
def test_each_keyword_in_any_case_with_or_without_accents(keyword, outcome, label):
    for variant in _variants(keyword):
        answer = read_answer(f"{variant}: đề nghị bổ sung số liệu\nquý III")
        assert answer == Answer(outcome=outcome, comment="đề nghị bổ sung số liệu\nquý III", keyword=label), variant


@pytest.mark.parametrize(
    ("first_line", "comment"),
    [
        ("Đồng ý", ""),
        ("Đồng ý.", ""),
        ("dong y!", ""),
        ("Đồng ý, nhưng cần sửa tiêu đề", "nhưng cần sửa tiêu đề"),
        ("ĐỒNG Ý - in 50 bản", "in 50 bản"),
        ("Đồng   ý: gửi ngay", "gửi ngay"),
        ("  Duyệt  ", ""),
    ],
)
def test_approval_lines(first_line, comment):
    answer = read_answer(f"\n\n{first_line}\n")
    assert (answer.outcome, answer.comment, answer.keyword) == (Outcome.approve, comment, "Đồng ý")


@pytest.mark.parametrize(
    "first_line",
    ["Không đồng ý", "Chưa đồng ý", "OK", "Đồng ýyy", "Approves", "Rejected: no", "Tôi đồng ý", "Ý kiến: Đồng ý"],
)
def test_what_is_no_keyword_is_not_recognised(first_line):
    with pytest.raises(AnswerNotRecognised):
        read_answer(f"{first_line}\nĐồng ý")  # a keyword on a later line does not count


def test_only_the_first_non_empty_line_counts():
    answer = read_answer("\n  \nTừ chối\nĐồng ý với phần còn lại")
    assert answer.outcome is Outcome.reject
    assert answer.comment == "Đồng ý với phần còn lại"


def test_dong_y_only_in_the_quoted_text_is_not_recognised():
    text = cut_quote("\n\nOn Mon, Dec 7, 2026 at 9:12 AM A <a@langson.gov.vn> wrote:\n> Đồng ý\n")
    assert text == ""
    with pytest.raises(AnswerNotRecognised):
        read_answer(text)


@pytest.mark.parametrize(
    "text",
    [
        "Từ chối",
        "Reject.",
        "Yêu cầu chỉnh sửa:",
        "Chỉnh sửa\n\n",
        "Từ chối\n\nSent from my iPhone",
        "Reject\nGửi từ iPhone của tôi",
    ],
)
def test_rejecting_or_sending_back_needs_a_comment(text):
    with pytest.raises(ReplyCommentRequired):
        read_answer(text)


def test_a_phone_signature_under_a_real_comment_stays_in_it():
    answer = read_answer("Từ chối: thiếu dự toán\n\nGửi từ iPhone của tôi")
    assert answer.outcome is Outcome.reject
    assert answer.comment == "thiếu dự toán\n\nGửi từ iPhone của tôi"


def test_approving_needs_no_comment_and_keeps_a_signature_as_one():
    assert read_answer("Đồng ý\n\nSent from my iPhone").comment == "Sent from my iPhone"


def test_the_errors_are_invalid_input_with_words_in_both_languages():
    messages = catalogue(MESSAGES)
    for error in (AnswerNotRecognised, ReplyCommentRequired):
        assert issubclass(error, UnreadableReply) and issubclass(error, InvalidInput)
        vi, en = messages.text(error.message_key, "vi"), messages.text(error.message_key, "en")
        assert vi and en and vi != en
    assert AnswerNotRecognised.message_key != ReplyCommentRequired.message_key
    with pytest.raises(ReplyCommentRequired, match="comment is required to reject"):
        read_answer("Reject")
