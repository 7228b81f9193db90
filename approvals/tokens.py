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


def approval_link_resolver(secret: bytes, base_url: str, path: str = "a"):
    """Turns a link placeholder argument ("id:generation") into the real link, at send time:
    /a/ for an approval, /s/ for a (re)submission."""

    def resolve(argument: str) -> str:
        row_id, generation = argument.rsplit(":", 1)
        return f"{base_url.rstrip('/')}/{path}/{derive_token(secret, uuid.UUID(row_id), int(generation))}"

    return resolve
