"""The decision a reply gives: its first line's keyword, and the comment after it.

Only the first non-empty line of the reply's own text (`quotes.reply_text`) is read for a keyword,
without regard to accents or case ("dong y", "ĐỒNG Ý", a decomposed "Đồng ý" all approve). The
keyword must be the whole line, or begin it followed by a separator: "Đồng ý." and "Đồng ý, nhưng …"
approve; "Không đồng ý" and "Đồng ýyy" are no keyword, and nothing is guessed from them. The rest of
the line and the lines below it are the comment. Rejecting and requesting changes need a comment;
a phone's "Sent from my iPhone" alone is not one.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import ClassVar

from approvals.errors import InvalidInput
from approvals.statuses import Outcome

# The canonical label a receipt quotes back ("Đã ghi nhận: Đồng ý"), by outcome
LABELS = {
    Outcome.approve: "Đồng ý",
    Outcome.reject: "Từ chối",
    Outcome.request_changes: "Yêu cầu chỉnh sửa",
}
KEYWORDS: dict[str, Outcome] = {
    "Đồng ý": Outcome.approve,
    "Duyệt": Outcome.approve,
    "Approve": Outcome.approve,
    "Approved": Outcome.approve,
    "Từ chối": Outcome.reject,
    "Reject": Outcome.reject,
    "Chỉnh sửa": Outcome.request_changes,
    "Yêu cầu chỉnh sửa": Outcome.request_changes,
    "Request changes": Outcome.request_changes,
}
SEPARATORS = " .,:;-!"
# What phones and mail apps add under a message: kept in the comment, but not a comment by itself
_DEVICE_SIGNATURE = re.compile(
    r"^(sent from my \S+|sent from (mail|outlook) for \S+|get outlook for \S+|gui tu \S+( \S+)? cua toi)\.?$"
)


class UnreadableReply(InvalidInput):
    """A reply whose decision cannot be read: nothing is recorded, and the sender is answered with the
    link to decide on the page. `message_key` names the answer's words in notifications' catalogue
    (`locale/messages.yaml`, vi and en)."""

    message_key: ClassVar[str] = "reply.unrecognised"


class AnswerNotRecognised(UnreadableReply):
    """The first line is none of the keywords (or the reply is empty above the quote)."""

    message_key = "reply.unrecognised"


class ReplyCommentRequired(UnreadableReply):
    """A rejection or a request for changes with nothing after the keyword."""

    message_key = "reply.comment_required"


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    comment: str
    keyword: str  # the canonical Vietnamese label, for the receipt


def _fold_char(char: str) -> str:
    """One character without its accents, lower case: always one character, so positions in the folded
    line are positions in the line."""
    if char in "đĐ":
        return "d"
    base = "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c)).lower()
    return base if len(base) == 1 else char


def fold(text: str) -> str:
    """Text compared without accents or case ("Đồng Ý" -> "dong y"), one character for one."""
    return "".join(_fold_char(c) for c in unicodedata.normalize("NFC", text))


def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    words = (re.escape(word) for word in fold(keyword).split())
    return re.compile(r"\s+".join(words) + rf"(?=$|[{re.escape(SEPARATORS)}\s])")


# Longest first: "yêu cầu chỉnh sửa" before "chỉnh sửa", "approved" before "approve"
_PATTERNS = [(_keyword_pattern(k), outcome) for k, outcome in sorted(KEYWORDS.items(), key=lambda item: -len(item[0]))]


def _keyword_at_start(folded_line: str) -> tuple[int, Outcome] | None:
    """Where the keyword that begins the line ends, and its outcome."""
    for pattern, outcome in _PATTERNS:
        found = pattern.match(folded_line)
        if found:
            return found.end(), outcome
    return None


def _without_device_signatures(comment: str) -> str:
    lines = [line for line in comment.splitlines() if not _DEVICE_SIGNATURE.match(fold(line.strip()))]
    return "\n".join(lines).strip()


def read_answer(text: str) -> Answer:
    """The decision on the first non-empty line of a reply's own text, and its comment."""
    lines = unicodedata.normalize("NFC", text).splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise AnswerNotRecognised("the reply has no text above the quoted email")
    line = lines[first].strip()
    keyword = _keyword_at_start(fold(line))
    if keyword is None:
        raise AnswerNotRecognised(f"no decision keyword on the reply's first line: {line[:80]!r}")
    end, outcome = keyword
    rest = line[end:].lstrip(SEPARATORS + " \t")
    comment = "\n".join([rest, *lines[first + 1 :]]).strip()
    if outcome is not Outcome.approve and not _without_device_signatures(comment):
        raise ReplyCommentRequired(f"a comment is required to {outcome.value.replace('_', ' ')} by reply")
    return Answer(outcome=outcome, comment=comment, keyword=LABELS[outcome])
