"""A reply's own text (notifications.replies.quotes): messages as Gmail, Outlook, Thunderbird and
phones write them, parsed from their bytes, cut above what they quote."""

from __future__ import annotations

import base64
import quopri
import unicodedata
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from approvals.statuses import Outcome
from notifications.replies.answers import read_answer
from notifications.replies.quotes import cut_quote, html_to_text, reply_text

QUOTED_SUBJECT = "[Cần phê duyệt] Bước 3 – Kế hoạch truyền thông năm 2027"
QUOTED_BODY = "Kính gửi đồng chí Nguyễn Văn A,\nMột bước của kế hoạch truyền thông đang chờ ý kiến phê duyệt."
HEADERS = (
    "From: =?UTF-8?B?Tmd1eeG7hW4gVsSDbiBB?= <a@langson.gov.vn>\r\n"
    "To: duyet+tok@reply.langson.gov.vn\r\n"
    "Subject: Re: =?UTF-8?B?W0PhuqduIHBow6ogZHV54buHdF0=?=\r\n"
    "Message-ID: <reply-1@mail.gmail.com>\r\n"
    "MIME-Version: 1.0\r\n"
)


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def plain(body: str, *, charset: str = "utf-8", encoding: str = "base64", flowed: bool = False) -> bytes:
    """A one-part text/plain reply, its body in `charset`, quoted-printable, base64 or 8bit."""
    data = body.replace("\n", "\r\n").encode(charset)
    if encoding == "base64":
        payload = base64.encodebytes(data)
    elif encoding == "quoted-printable":
        payload = quopri.encodestring(data)
    else:
        payload = data
    params = "; format=flowed" if flowed else ""
    return (
        HEADERS.encode()
        + f"Content-Type: text/plain; charset={charset}{params}\r\n".encode()
        + f"Content-Transfer-Encoding: {encoding}\r\n\r\n".encode()
        + payload
    )


def alternative(text: str, html: str) -> bytes:
    """Gmail's shape: multipart/alternative, both parts UTF-8 quoted-printable."""
    parts = []
    for subtype, body in (("plain", text), ("html", html)):
        data = quopri.encodestring(body.replace("\n", "\r\n").encode("utf-8"))
        parts.append(
            b"--b1\r\n"
            + f'Content-Type: text/{subtype}; charset="UTF-8"\r\n'.encode()
            + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            + data
            + b"\r\n"
        )
    return (
        HEADERS.encode()
        + b'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
        + b"".join(parts)
        + b"--b1--\r\n"
    )


def html_only(html: str) -> bytes:
    return (
        HEADERS.encode()
        + b'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + base64.encodebytes(html.encode("utf-8"))
    )


def quoted(lines: str = QUOTED_BODY) -> str:
    return "\n".join("> " + line for line in lines.split("\n"))


GMAIL_EN = f"Đồng ý\n\nOn Mon, Dec 7, 2026 at 9:12 AM Nguyễn Văn A <a@langson.gov.vn> wrote:\n\n{quoted()}\n"
GMAIL_EN_WRAPPED = (
    "Đồng ý, đề nghị gửi bản cuối trước ngày 10.\n\n"
    "On Mon, Dec 7, 2026 at 9:12 AM Kế hoạch truyền thông tỉnh Lạng Sơn <\n"
    f"kehoach@langson.gov.vn> wrote:\n\n{quoted()}\n"
)
GMAIL_VI_WRAPPED = (
    "Từ chối: thiếu số liệu quý III.\n\n"
    "Vào Th 2, 7 thg 12, 2026 lúc 09:12 Nguyễn Văn A <a@langson.gov.vn>\n"
    f"đã viết:\n\n{quoted()}\n"
)
OUTLOOK_ORIGINAL = (
    "Duyệt\n\n-----Original Message-----\nFrom: Kế hoạch <kehoach@langson.gov.vn>\n"
    f"Sent: Monday, December 7, 2026 9:12 AM\nTo: Nguyễn Văn A <a@langson.gov.vn>\nSubject: {QUOTED_SUBJECT}\n\n"
    f"{QUOTED_BODY}\n"
)
OUTLOOK_HEADER_BLOCK = (
    "Approve\n\nFrom: Kế hoạch <kehoach@langson.gov.vn>\nSent: Monday, December 7, 2026 9:12 AM\n"
    f"To: Nguyễn Văn A <a@langson.gov.vn>\nSubject: {QUOTED_SUBJECT}\n\n{QUOTED_BODY}\n"
)
OUTLOOK_UNDERSCORES = (
    "Đồng ý\n\n________________________________\nFrom: Kế hoạch <kehoach@langson.gov.vn>\n"
    f"Sent: Monday, December 7, 2026 9:12 AM\nSubject: {QUOTED_SUBJECT}\n\n{QUOTED_BODY}\n"
)
OUTLOOK_VI = (
    "Yêu cầu chỉnh sửa: bổ sung dự toán kinh phí.\n\nTừ: Kế hoạch <kehoach@langson.gov.vn>\n"
    "Đã gửi: Thứ Hai, ngày 7 tháng 12 năm 2026 9:12 SA\nĐến: Nguyễn Văn A <a@langson.gov.vn>\n"
    f"Chủ đề: {QUOTED_SUBJECT}\n\n{QUOTED_BODY}\n"
)
THUNDERBIRD = f"Đồng ý.\n\nOn 07/12/2026 09:12, Nguyễn Văn A wrote:\n{quoted()}\n"
THUNDERBIRD_OLD = f"Reject - the budget is missing.\n\n07/12/2026 09:12, Nguyễn Văn A wrote:\n{quoted()}\n"
IPHONE_EN = (
    f"Đồng ý\n\nSent from my iPhone\n\n> On 7 Dec 2026, at 09:12, Nguyễn Văn A <a@langson.gov.vn> wrote:\n{quoted()}\n"
)
IPHONE_VI = (
    "Đồng ý\n\nGửi từ iPhone của tôi\n\n"
    f"> Vào 09:12, ngày 7 thg 12, 2026, Kế hoạch <k@langson.gov.vn> đã viết:\n{quoted()}\n"
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GMAIL_EN, "Đồng ý"),
        (GMAIL_EN_WRAPPED, "Đồng ý, đề nghị gửi bản cuối trước ngày 10."),
        (GMAIL_VI_WRAPPED, "Từ chối: thiếu số liệu quý III."),
        (OUTLOOK_ORIGINAL, "Duyệt"),
        (OUTLOOK_HEADER_BLOCK, "Approve"),
        (OUTLOOK_UNDERSCORES, "Đồng ý"),
        (OUTLOOK_VI, "Yêu cầu chỉnh sửa: bổ sung dự toán kinh phí."),
        (THUNDERBIRD, "Đồng ý."),
        (THUNDERBIRD_OLD, "Reject - the budget is missing."),
        (IPHONE_EN, "Đồng ý\n\nSent from my iPhone"),
        (IPHONE_VI, "Đồng ý\n\nGửi từ iPhone của tôi"),
        ("Đồng ý\n-- \nNguyễn Văn A\nPhó Chủ tịch UBND tỉnh\n", "Đồng ý"),
    ],
    ids=[
        "gmail",
        "gmail wrapped",
        "gmail vi wrapped",
        "outlook original message",
        "outlook header block",
        "outlook underscores",
        "outlook vi",
        "thunderbird",
        "thunderbird old",
        "iphone",
        "iphone vi",
        "signature",
    ],
)
@pytest.mark.parametrize("encoding", ["base64", "quoted-printable", "8bit"])
def test_a_plain_reply_is_cut_above_what_it_quotes(body, expected, encoding):
    assert reply_text(parse(plain(body, encoding=encoding))) == expected


def test_gmail_prefers_the_plain_part_and_its_html_part_cuts_the_same():
    html = (
        '<div dir="ltr">Đồng ý<div>Chú ý mục 3.</div></div><br>'
        '<div class="gmail_quote gmail_quote_container"><div dir="ltr" class="gmail_attr">'
        "Vào Th 2, 7 thg 12, 2026 lúc 09:12 Nguyễn Văn A &lt;a@langson.gov.vn&gt; đã viết:<br></div>"
        '<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex">Đồng ý mẫu cũ</blockquote></div>'
    )
    text = "Đồng ý\nChú ý mục 3. (plain part)\n\n" + GMAIL_VI_WRAPPED.split("\n\n", 1)[1]
    assert reply_text(parse(alternative(text, html))) == "Đồng ý\nChú ý mục 3. (plain part)"
    assert reply_text(parse(html_only(html))) == "Đồng ý\nChú ý mục 3."


def test_an_outlook_html_only_reply_stops_at_its_reply_header():
    html = (
        "<html><head><style>p {margin:0}</style></head><body>"
        '<div style="font-family: Calibri">Từ chối&nbsp;vì thiếu <b>dự toán</b>.</div>'
        '<div id="appendonsend"></div><hr style="display:inline-block;width:98%" tabindex="-1">'
        '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri"><b>From:</b> Kế hoạch<br>'
        "<b>Sent:</b> Monday, December 7, 2026 9:12 AM</font></div>"
        "<div>Đồng ý mẫu cũ: Kính gửi đồng chí</div></body></html>"
    )
    assert reply_text(parse(html_only(html))) == "Từ chối vì thiếu dự toán."


def test_outlook_desktop_html_cuts_at_the_hr_followed_by_from():
    html = (
        "<p>Đồng ý</p><p>Ghi chú: in 50 bản.</p>"
        '<hr><div style="border:none"><p><b>From:</b> Kế hoạch &lt;k@langson.gov.vn&gt;<br>'
        "<b>Sent:</b> Monday, December 7, 2026</p></div><p>Kính gửi đồng chí</p>"
    )
    assert reply_text(parse(html_only(html))) == "Đồng ý\n\nGhi chú: in 50 bản."


def test_thunderbird_html_stops_at_its_cite_prefix():
    html = (
        "<html><body><p>Đồng ý<br></p>"
        '<div class="moz-cite-prefix">On 07/12/2026 09:12, Nguyễn Văn A wrote:<br></div>'
        '<blockquote type="cite" cite="mid:x@langson.gov.vn">Từ chối</blockquote></body></html>'
    )
    assert reply_text(parse(html_only(html))) == "Đồng ý"


def test_html_keeps_no_script_or_style_and_reads_entities():
    assert html_to_text("<style>.a{}</style><script>x()</script><p>Đồng&#32;ý &amp; ký</p>") == "Đồng ý & ký"


def _encodable(text: str) -> bool:
    try:
        text.encode("cp1258")
    except UnicodeEncodeError:
        return False
    return True


def _windows_1258(text: str) -> bytes:
    """Windows-1258 as Vietnamese Windows writes it: a base letter (ô, ơ, ă…) and a combining tone mark."""
    out = b""
    for char in unicodedata.normalize("NFC", text):
        base, *marks = unicodedata.normalize("NFD", char)
        candidates = [char] + [
            unicodedata.normalize("NFC", base + m) + "".join(marks[:i] + marks[i + 1 :]) for i, m in enumerate(marks)
        ]
        out += next(c for c in [*candidates, base + "".join(marks)] if _encodable(c)).encode("cp1258")
    return out


def test_a_windows_1258_body_is_decoded_and_composed():
    body = "Từ chối: đề nghị bổ sung số liệu quý III.\r\n\r\n-----Original Message-----\r\nFrom: x\r\n"
    raw = (
        HEADERS.encode()
        + b"Content-Type: text/plain; charset=windows-1258\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        + quopri.encodestring(_windows_1258(body))
    )
    assert b"T=FD=CC ch=F4=EC" in raw  # "Từ chối": the tone marks travel as combining characters
    text = reply_text(parse(raw))
    assert text == "Từ chối: đề nghị bổ sung số liệu quý III."
    assert unicodedata.is_normalized("NFC", text)


def test_a_decomposed_dong_y_still_approves():
    nfd = unicodedata.normalize("NFD", "Đồng ý\n\nGửi từ iPhone của tôi")
    assert nfd != unicodedata.normalize("NFC", nfd)
    text = reply_text(parse(plain(nfd + "\n\n" + quoted())))
    answer = read_answer(text)
    assert answer.outcome is Outcome.approve
    assert answer.comment == "Gửi từ iPhone của tôi"  # the phone's line lands in the comment, harmlessly


def test_a_utf8_body_labelled_ascii_is_still_read():
    raw = HEADERS.encode() + b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + "Đồng ý\r\n".encode()
    assert reply_text(parse(raw)) == "Đồng ý"


def test_format_flowed_lines_are_joined():
    body = "Từ chối: số liệu quý III chưa khớp với \nbáo cáo của Sở.\n\nOn 07/12/2026 09:12, A wrote:\n> x\n"
    assert reply_text(parse(plain(body, flowed=True, encoding="8bit"))) == (
        "Từ chối: số liệu quý III chưa khớp với báo cáo của Sở."
    )


@pytest.mark.parametrize(
    "text",
    [
        "Đồng ý\nOn Monday I will sign the paper copy.\nThanks",
        "Đồng ý\nTừ: ngày mai, tôi đi công tác.\nCảm ơn",
        "Từ chối\nAnh ấy đã viết:\nmột báo cáo chưa đủ",
    ],
)
def test_text_that_only_looks_like_a_quote_header_is_kept(text):
    assert cut_quote(text) == text


def test_a_reply_with_only_the_quote_has_no_text():
    assert reply_text(parse(plain("\n\nOn Mon, Dec 7, 2026 at 9:12 AM A <a@x.vn> wrote:\n> Đồng ý\n"))) == ""
