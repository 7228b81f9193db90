"""A reply's own text: the message body without the email it quotes.

Mail clients quote in their own ways, and a reply is read top-posted (the answer above the quote,
as Gmail, Outlook and phones write it). The text is cut at the first of:

- a line quoted with `>`;
- an attribution: Gmail's and Apple Mail's "On <date>, <name> <addr> wrote:", Thunderbird's
  "<date>, <name> wrote:", their Vietnamese "Vào <ngày> …, <tên> <<addr>> đã viết:" (either may be
  wrapped over two or three lines);
- Outlook's "-----Original Message-----", a "________________________________" line followed by
  "From:", and its header block "From: … Sent: …" (Vietnamese "Từ: … Đã gửi: …");
- a signature separator, "-- ".

An HTML-only reply is turned into text first, and stops at the first element that holds the quote:
`<blockquote>`, Gmail's `gmail_quote`, Outlook's `divRplyFwdMsg` (its `<hr>` becomes the underscore
line), Thunderbird's `moz-cite-prefix`. Text after the quote (a bottom-posted or interleaved answer)
is not read: the caller then finds no answer and sends the link to decide on the page.
"""

from __future__ import annotations

import re
import unicodedata
from email.message import EmailMessage
from html.parser import HTMLParser

# --- plain text -----------------------------------------------------------------------------------

_QUOTED = re.compile(r"^\s*>")
_SIGNATURE = re.compile(r"^--\s?$")
_ORIGINAL = re.compile(r"^\s*-{2,}\s*(original message|thư gốc)\s*-{2,}\s*$", re.IGNORECASE)
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")
_HEADER_FROM = re.compile(r"^\s*\*?(from|từ)\s*:", re.IGNORECASE)
_HEADER_SENT = re.compile(r"^\s*\*?(sent|date|đã gửi|ngày gửi|ngày)\s*:", re.IGNORECASE)
_HEADER_OTHER = re.compile(r"^\s*\*?(to|cc|subject|đến|gửi|chủ đề)\s*:", re.IGNORECASE)
# An attribution's first line, and how it ends (one to three lines further)
_ATTRIBUTION_START = re.compile(r"^\s*(on|vào)\s", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(r"(wrote|đã viết|a écrit|schrieb|escribió)\s*:\s*$", re.IGNORECASE)
_HAS_DATE_OR_ADDRESS = re.compile(r"\d|@")
_WRAPPED_LINES = 3


def _is_attribution(lines: list[str], i: int) -> bool:
    line = lines[i]
    if _ATTRIBUTION_END.search(line):
        # "On …, X wrote:" on one line; Thunderbird's "07/12/2026 09:12, X wrote:" has a date
        return bool(_ATTRIBUTION_START.match(line) or _HAS_DATE_OR_ADDRESS.search(line))
    if not _ATTRIBUTION_START.match(line):
        return False
    joined = line
    for following in lines[i + 1 : i + _WRAPPED_LINES]:
        if not following.strip():
            return False
        joined += " " + following.strip()
        if _ATTRIBUTION_END.search(following):
            return bool(_HAS_DATE_OR_ADDRESS.search(joined))
    return False


def _next_nonblank(lines: list[str], i: int) -> str:
    for line in lines[i + 1 :]:
        if line.strip():
            return line
    return ""


def _is_header_block(lines: list[str], i: int) -> bool:
    """Outlook's "From: … / Sent: …" (other headers such as To: may come between them)."""
    if not _HEADER_FROM.match(lines[i]):
        return False
    for following in lines[i + 1 : i + 5]:
        if _HEADER_SENT.match(following):
            return True
        if not _HEADER_OTHER.match(following):
            return False
    return False


def _starts_quote(lines: list[str], i: int) -> bool:
    line = lines[i]
    return bool(
        _QUOTED.match(line)
        or _SIGNATURE.match(line)
        or _ORIGINAL.match(line)
        or (_UNDERSCORES.match(line) and _HEADER_FROM.match(_next_nonblank(lines, i)))
        or _is_header_block(lines, i)
        or _is_attribution(lines, i)
    )


def cut_quote(text: str) -> str:
    """The text above the first quote, attribution, forwarded header or signature separator."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = text.split("\n")
    for i in range(len(lines)):
        if _starts_quote(lines, i):
            lines = lines[:i]
            break
    return "\n".join(line.rstrip() for line in lines).strip("\n")


# --- HTML -----------------------------------------------------------------------------------------

_BLOCKS = frozenset(
    {
        *("address", "article", "aside", "div", "dl", "dd", "dt", "fieldset", "figure", "footer", "form", "header"),
        *("h1", "h2", "h3", "h4", "h5", "h6", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody"),
        *("thead", "tfoot", "tr", "ul"),
    }
)
_SKIPPED = frozenset({"script", "style", "head", "title", "template"})
_QUOTE_CLASSES = frozenset({"gmail_quote", "gmail_quote_container", "moz-cite-prefix", "yahoo_quoted"})
_QUOTE_IDS = frozenset({"divrplyfwdmsg", "mail-editor-reference-message-container"})
_HR = "\n" + "_" * 32 + "\n"  # as Outlook writes it in text, so that `cut_quote` knows it
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"})


class _TextOfHtml(HTMLParser):
    """HTML to the text a reader sees, stopping at the first element that holds the quote."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.preformatted = 0
        self.stopped = False

    def _is_quote(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        if tag == "blockquote":
            return True
        values = dict(attrs)
        classes = set((values.get("class") or "").lower().split())
        return bool(classes & _QUOTE_CLASSES) or (values.get("id") or "").lower() in _QUOTE_IDS

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.stopped:
            return
        if self._is_quote(tag, attrs):
            self.stopped = True
            while self.parts and (not self.parts[-1].strip() or self.parts[-1] == _HR):
                self.parts.pop()  # Outlook's <hr> above its reply header belongs to the quote
            return
        if tag in _SKIPPED:
            self.skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "hr":
            self.parts.append(_HR)
        elif tag in _BLOCKS:
            self.parts.append("\n")
            self.preformatted += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self.stopped or tag in _VOID:
            return
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")
            if tag == "pre":
                self.preformatted = max(0, self.preformatted - 1)

    def handle_data(self, data: str) -> None:
        if self.stopped or self.skipping:
            return
        self.parts.append(data if self.preformatted else re.sub(r"\s+", " ", data))

    def text(self) -> str:
        joined = "".join(self.parts).replace("\xa0", " ")
        lines = [line.strip() for line in joined.split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def html_to_text(html: str) -> str:
    """An HTML body's text up to its first quoting element."""
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    return parser.text()


# --- a message ------------------------------------------------------------------------------------


def decoded(part: EmailMessage) -> str:
    """A text part's content in its declared charset (transfer encoding undone); UTF-8 when the
    charset is unknown or the bytes do not fit it, as a client that mislabels its mail means."""
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "us-ascii"
    for encoding, errors in ((charset, "strict"), ("utf-8", "strict"), (charset, "replace")):
        try:
            return data.decode(encoding, errors)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", "replace")


def _unflowed(text: str, *, delsp: bool) -> str:
    """RFC 3676 format=flowed: a line that ends in a space goes on with the next one, unless it is the
    signature separator or the quote depth changes; a space stuffed at a line's start is taken off."""
    out: list[str] = []
    carry = ""
    for raw in text.split("\n"):
        line = raw[1:] if raw.startswith(" ") else raw
        if carry and (line.startswith(">") or line == "-- "):
            out.append(carry)
            carry = ""
        if line.endswith(" ") and line != "-- " and not line.startswith(">"):
            carry += line[:-1] if delsp else line
            continue
        out.append(carry + line)
        carry = ""
    if carry:
        out.append(carry)
    return "\n".join(out)


def _param(part: EmailMessage, name: str) -> str:
    value = part.get_param(name)
    return value.lower() if isinstance(value, str) else ""


def reply_text(message: EmailMessage) -> str:
    """The reply's own text, NFC: its text/plain body (else its HTML as text) above the quote."""
    body = message.get_body(preferencelist=("plain", "html"))
    if not isinstance(body, EmailMessage):
        return ""
    text = decoded(body).replace("\r\n", "\n").replace("\r", "\n")
    if body.get_content_subtype() == "html":
        text = html_to_text(text)
    elif _param(body, "format") == "flowed":
        text = _unflowed(text, delsp=_param(body, "delsp") == "yes")
    return cut_quote(text)
