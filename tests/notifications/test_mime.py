"""The dispatcher writes MIME bytes itself (notifications.mime): parsed back with the standard
library they must say exactly what `Dispatcher.build()` (an EmailMessage) says."""

from __future__ import annotations

import base64
import re
import unicodedata
import uuid
from email import message_from_bytes, policy
from email.header import decode_header, make_header

import pytest

from notifications.composing import placeholder
from notifications.dispatcher import Dispatcher
from notifications.models import OutboxMessage
from tests.notifications.helpers import link_for, smtp_config

LONG_VI = unicodedata.normalize(
    "NFC",
    "Phê duyệt kế hoạch truyền thông về phát triển bền vững và nâng cao năng lực "
    "cạnh tranh tỉnh Lạng Sơn giai đoạn 2026–2030 – Sở Khoa học và Công nghệ",
)
CASES = {
    "vietnamese": dict(subject="[Cần phê duyệt] Bước 1 – Năm 2027", names=["Nông Thị Hạnh"]),
    "long subject and name": dict(subject=LONG_VI * 2, names=[LONG_VI]),
    "ascii": dict(subject="Plain ASCII subject", names=["Nguyen Van A"]),
    "long ascii": dict(subject=" ".join(["word"] * 60), names=["A" * 90]),
    "looks encoded": dict(subject="=?utf-8?q?not_really?= x", names=["=?utf-8?q?x?="]),
    "specials in names": dict(subject="Subject", names=['Nguyễn, "Văn" A', "O'Brien (QA)", 'Back\\slash "q"']),
    "many recipients": dict(subject="Nhiều người nhận", names=[f"Người nhận số {i}" for i in range(12)]),
    "combining marks": dict(subject=unicodedata.normalize("NFD", "Tiếng Việt tổ hợp ") * 5, names=["Ðặng"]),
    "emoji and symbols": dict(subject="Hạn chót ⏰ 17:00 – «quan trọng» €", names=["Lê 😀"]),
}
BODIES = {
    "text": "Kính gửi đồng chí,\n\nLiên kết: "
    + placeholder("approval_link", "abc")
    + "\n"
    + ".\n"
    + "From the start\n"
    + "x" * 1500
    + "\n"
    + "Dòng cuối không xuống dòng",
    "html": f'<p>Xin chào</p><a href="{placeholder("approval_link", "abc")}">Mở</a>\r\n<p>{"ạ" * 800}</p>',
}


def outbox_message(
    subject: str,
    names: list[str],
    attachments: list | None = None,
    text: str = BODIES["text"],
    html: str = BODIES["html"],
    thread_references: str | None = None,
) -> OutboxMessage:
    return OutboxMessage(
        thread_references=thread_references,
        message_id=f"<{uuid.uuid4()}@kehoach.test>",
        subject=subject,
        text_body=text,
        html_body=html,
        recipients=[{"name": name, "email": f"user{i}@lang-son.example"} for i, name in enumerate(names)],
        attachments=attachments or [],
    )


@pytest.fixture(scope="module")
def dispatcher() -> Dispatcher:
    return Dispatcher(None, smtp_config(25), resolvers={"approval_link": lambda a: link_for(a) + "?x=1&y=2"})


def parse(data: bytes):
    return message_from_bytes(data, policy=policy.default)


def decoded(message, name: str) -> str:
    raw = next(value for key, value in message.raw_items() if key.lower() == name.lower())
    return str(make_header(decode_header(raw.replace("\r\n", "").replace("\n", "")))).strip()


def compare(dispatcher: Dispatcher, message: OutboxMessage) -> None:
    raw = dispatcher.serialize(message)
    assert raw.isascii()
    lines = raw.split(b"\r\n")
    assert all(len(line) <= 998 for line in lines)
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    head = raw.split(b"\r\n\r\n", 1)[0]
    for word in re.findall(rb"=\?[^?]+\?[bBqQ]\?[^?]*\?=", head):
        assert len(word) <= 75  # RFC 2047
    ours, reference = parse(raw), parse(dispatcher.build(message).as_bytes())

    for name in (
        "Message-ID",
        "In-Reply-To",
        "References",
        "Auto-Submitted",
        "X-Auto-Response-Suppress",
        "MIME-Version",
    ):
        assert str(ours[name]) == str(reference[name]), name
    assert ours["Subject"] == message.subject
    # Text that looks like an encoded word is written as is by EmailMessage, and then read
    # back decoded (changed); ours is encoded, so it reads back as written.
    looks_encoded = "=?" in message.subject + "".join(r["name"] for r in message.recipients)
    if not looks_encoded:
        assert ours["Subject"] == reference["Subject"]
    # Address headers: read with the RFC 2047 decoder (policy.default's address parser puts a
    # space between adjacent encoded words of one display name, RFC 2047 section 6.2 says not to).
    assert decoded(ours, "From") == decoded(reference, "From")
    if not looks_encoded:
        assert decoded(ours, "To") == decoded(reference, "To")
    assert [a.addr_spec for a in ours["To"].addresses] == [r["email"] for r in message.recipients]
    to = decoded(ours, "To")
    for recipient in message.recipients:
        assert recipient["name"] in to.replace('\\"', '"').replace("\\\\", "\\")
    assert ours.get_content_type() == reference.get_content_type()
    assert [p.get_content_type() for p in ours.walk()] == [p.get_content_type() for p in reference.walk()]
    for kind in ("plain", "html"):
        assert ours.get_body((kind,)).get_content() == reference.get_body((kind,)).get_content(), kind
    ours_files = [
        (
            p.get_filename(),
            p.get_content_type(),
            {k: v for k, v in p.get_params() if k != "name"},  # ours also names it for older clients
            p.get_payload(decode=True),
        )
        for p in ours.iter_attachments()
    ]
    assert all(p.get_param("name") == p.get_filename() for p in ours.iter_attachments())
    reference_files = [
        (p.get_filename(), p.get_content_type(), dict(p.get_params()), p.get_payload(decode=True))
        for p in reference.iter_attachments()
    ]
    assert ours_files == reference_files


@pytest.mark.parametrize("case", CASES)
def test_the_written_bytes_say_what_the_email_message_says(dispatcher, case):
    compare(dispatcher, outbox_message(**CASES[case]))


def test_an_answer_to_a_reply_names_it_in_in_reply_to_and_references(dispatcher):
    """Threaded under the reply (notifications.replies.threads): a long References folds, each id whole."""
    chain = [f"<{uuid.uuid4()}@mail.gmail.com>" for _ in range(10)]
    message = outbox_message(
        subject="Re: [Cần phê duyệt] Bước 1", names=["Nông Thị Hạnh"], thread_references=" ".join(chain)
    )
    compare(dispatcher, message)
    parsed = parse(dispatcher.serialize(message))
    assert str(parsed["In-Reply-To"]) == chain[-1] and str(parsed["References"]).split() == chain
    assert "In-Reply-To" not in parse(dispatcher.serialize(outbox_message(**CASES["ascii"])))


def test_ascii_and_short_bodies(dispatcher):
    compare(dispatcher, outbox_message("Short", ["A"], text="Hello\n", html="<p>Hello</p>"))
    compare(dispatcher, outbox_message("Empty", ["A"], text="", html=""))


def test_attachments_with_vietnamese_names_and_binary_data(dispatcher):
    attachments = [
        {
            "filename": "Lịch hạn chót.ics",
            "content_type": "text/calendar; method=REQUEST; charset=UTF-8",
            "data": base64.b64encode("BEGIN:VCALENDAR\r\nSUMMARY:Hạn\r\nEND:VCALENDAR\r\n".encode()).decode(),
        },
        {
            "filename": "bao-cao.bin",
            "content_type": "application/octet-stream",
            "data": base64.b64encode(bytes(range(256)) * 4).decode(),
        },
    ]
    message = outbox_message("Có tệp đính kèm", ["Nông Thị Hạnh"], attachments=attachments)
    compare(dispatcher, message)
    parsed = parse(dispatcher.serialize(message))
    calendar = next(parsed.iter_attachments())
    assert calendar.get_content_type() == "text/calendar"
    assert calendar.get_param("method") == "REQUEST"
    assert calendar.get_filename() == "Lịch hạn chót.ics"


def test_the_resolved_link_is_in_both_parts_and_escaped_in_html(dispatcher):
    parsed = parse(dispatcher.serialize(outbox_message(**CASES["vietnamese"])))
    link = link_for("abc") + "?x=1&y=2"
    assert link in parsed.get_body(("plain",)).get_content()
    assert f'href="{link.replace("&", "&amp;")}"' in parsed.get_body(("html",)).get_content()
