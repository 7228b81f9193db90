"""Link tokens.

A token is derived from the link key and the assignment (HMAC), so it is never
stored anywhere: the database keeps only its SHA-256, and the email carries a
placeholder that the dispatcher turns into the link when it sends. A new
generation (a reminder, a reassignment) gives a new token and kills the old one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Callable

TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")


def derive_token(secret: bytes, assignment_id: uuid.UUID, generation: int) -> str:
    digest = hmac.new(secret, f"kehoach-link:{assignment_id}:{generation}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    return bool(TOKEN_PATTERN.match(token))


APPROVAL_LINK = "approval_link"


def approval_link_argument(assignment_id: uuid.UUID, generation: int) -> str:
    return f"{assignment_id}:{generation}"


def approval_link_resolver(secret: bytes, base_url: str, path: str = "a") -> Callable[[str], str]:
    """Turns a link placeholder argument ("id:generation") into the real link, at send time:
    /a/ for an approval, /s/ for a (re)submission."""

    def resolve(argument: str) -> str:
        row_id, generation = argument.rsplit(":", 1)
        return f"{base_url.rstrip('/')}/{path}/{derive_token(secret, uuid.UUID(row_id), int(generation))}"

    return resolve


# The "Báo cáo vướng mắc" link: any official's emails and pages carry one for their own unit.
# It names the official and the day it was issued, signed (HMAC), so nothing is stored; it
# works for a link lifetime from that day, as often as the unit has problems to raise.

PROBLEM_LINK = "problem_link"
_PROBLEM = re.compile(r"^([A-Za-z0-9_-]{1,120})\.([0-9]{8})\.([A-Za-z0-9_-]{43})$")


def _problem_mac(secret: bytes, official_id: str, issued: str) -> str:
    digest = hmac.new(secret, f"kehoach-problem:{official_id}:{issued}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def problem_token(secret: bytes, official_id: str, issued: str) -> str:
    """`issued` is the day as YYYYMMDD."""
    name = base64.urlsafe_b64encode(official_id.encode()).rstrip(b"=").decode()
    return f"{name}.{issued}.{_problem_mac(secret, official_id, issued)}"


def read_problem_token(secret: bytes, token: str) -> tuple[str, str] | None:
    """(official id, issued YYYYMMDD) of a genuine token, else None (checked in constant time)."""
    found = _PROBLEM.match(token)
    if not found:
        return None
    name, issued, mac = found.groups()
    try:
        official_id = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(mac, _problem_mac(secret, official_id, issued)):
        return None
    return official_id, issued


def problem_link_resolver(secret: bytes, base_url: str) -> Callable[[str], str]:
    """Turns a problem-link placeholder argument ("official:YYYYMMDD") into the link, at send time."""

    def resolve(argument: str) -> str:
        official_id, issued = argument.rsplit(":", 1)
        return f"{base_url.rstrip('/')}/p/{problem_token(secret, official_id, issued)}"

    return resolve
