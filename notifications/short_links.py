"""Short links for SMS: `https://<public host>/l/<code>`, a redirect (303) to the personal link.

An SMS must fit two segments (134 UCS-2 code units, `channels.segments`), which today's links
(a 43-character token) would nearly fill. A short link carries a 12-character code instead, and
is as safe as the link it stands for:

- **Unguessable.** The code is 12 characters of base58 (Bitcoin's alphabet: letters and digits
  without 0, O, I and l, which read alike; URL-safe as it is): 58^12 ≈ 2^70.3 codes. A guess
  names one of n live codes with probability n / 2^70.3. Each wrong guess is a failed link
  request (`service.limits.LinkFailureLimit`: 20 a minute per client, 28 800 a day): a million
  live short links (a province has some hundreds of officials) and a billion guesses (35 000
  clients for a day, or 100 clients for a year) still hit one with probability below 2^-20.
  Ten characters (58.6 bits) would give 2^-8.7 there; the two more cost two of the SMS's 134
  units. A hit opens only what the target shows, and the target checks itself again.
- **Never stored.** The database keeps the code's keyed hash (HMAC-SHA-256 under the link
  secret, `code_hash`), and the target sealed (AES-GCM) under a key derived from the code and
  the link secret, bound to the official it was made for: a copy of the database gives neither
  codes nor the tokens in the targets, and a row altered in the database no longer opens (no
  redirect anywhere else). Whoever holds the link secret can derive every token anyway.
- **Expiring with its target.** The row keeps the target's own expiry; past it the code is
  unknown, and the rows that are past it go when the next short link is made.
- **Idempotent.** The code is derived (HMAC under the link secret, its own label) from the
  official and the target: the same message sent twice, or by two dispatchers at once, gives the
  same code and one row (an INSERT that does nothing on conflict), with no read before the write
  to race. A new generation of the link (a reminder, a reassignment) is a new target, so a new
  code; the old target dies with its token, and its code answers the invalid-link page.

The short link is made by the channel that sends the SMS, as it sends it: the personal link exists
only then (the outbox keeps a placeholder, `notifications.composing`). So the table is the
outbox's neighbour (`notifications.models.ShortLink`), not the tokens'. `GET /l/<code>` is
`service.short_links`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.db import core, dialect_name, utcnow
from approvals.errors import Conflict, InvalidInput, InvalidLink
from notifications.models import SHORT_LINK_TABLE, ShortLink

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"  # base58: no 0, O, I, l
CODE_LENGTH = 12  # 58^12 ≈ 2^70.3 (the module's docstring says why)
SHORT_PATH = "/l/"
_CODE = re.compile(f"^[{ALPHABET}]{{{CODE_LENGTH}}}$")
_NONCE = bytes(12)  # each code's key seals one target only (the code is derived from it): never reused


class NotAShortLinkTarget(InvalidInput):
    """A short link asked for a target that is not an absolute http(s) link."""


class CodeTaken(Conflict):
    """Two targets derived the same code (about 2^-70 for any two): the second gets none."""


class UnknownShortLink(InvalidLink):
    """A code that is malformed, unknown, expired, or whose row does not open: answered as any
    dead link is."""


def _mac(secret: bytes, label: str, text: str) -> bytes:
    return hmac.new(secret, f"kehoach-{label}:{text}".encode(), hashlib.sha256).digest()


def derive_code(secret: bytes, target_url: str, official_id: str) -> str:
    """The code of the official's short link to `target_url`: the same for the same pair."""
    number = int.from_bytes(_mac(secret, "short-link", f"{official_id}\n{target_url}"), "big")
    digits = []
    for _ in range(CODE_LENGTH):  # 256 bits mod 58^12: no bias worth the name (2^-185)
        number, digit = divmod(number, len(ALPHABET))
        digits.append(ALPHABET[digit])
    return "".join(digits)


def well_formed(code: str) -> bool:
    return bool(_CODE.match(code))


def code_hash(secret: bytes, code: str) -> str:
    """What the database keeps of a code."""
    return _mac(secret, "short-link-hash", code).hex()


def _sealer(secret: bytes, code: str) -> AESGCM:
    return AESGCM(_mac(secret, "short-link-key", code))


def seal(secret: bytes, code: str, target_url: str, official_id: str) -> bytes:
    return _sealer(secret, code).encrypt(_NONCE, target_url.encode(), official_id.encode())


def unseal(secret: bytes, code: str, sealed: bytes, official_id: str) -> str | None:
    """The target, or None when the row was not sealed by this code for this official."""
    try:
        return _sealer(secret, code).decrypt(_NONCE, sealed, official_id.encode()).decode()
    except (InvalidTag, ValueError):
        return None


def short_url(target_url: str, code: str) -> str:
    """The short link, on the target's own host (the public base URL's)."""
    parts = urlsplit(target_url)
    return f"{parts.scheme}://{parts.netloc}{SHORT_PATH}{code}"


_INSERT = {
    name: insert(SHORT_LINK_TABLE).on_conflict_do_nothing(index_elements=["code_hash"])
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


async def short_link(
    session: AsyncSession,
    target_url: str,
    official_id: str,
    expires_at: dt.datetime,
    *,
    secret: bytes,
    now: dt.datetime | None = None,
) -> str:
    """The official's short link to `target_url`, valid until `expires_at` (the target's own
    expiry), written in the caller's transaction; the same link for the same target and official,
    however often and by however many processes it is asked for."""
    parts = urlsplit(target_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise NotAShortLinkTarget("a short link's target is an absolute http(s) link")
    now = now or utcnow()
    code = derive_code(secret, target_url, official_id)
    hashed = code_hash(secret, code)
    await session.execute(delete(ShortLink).where(ShortLink.expires_at < now))
    values = {
        "code_hash": hashed,
        "sealed_target": seal(secret, code, target_url, official_id),
        "official_id": official_id,
        "expires_at": expires_at,
        "created_at": now,
    }
    await core(session, _INSERT[dialect_name(session)], values)
    # Already there (the same message again) or just written: the row must open to this target.
    row = (
        await session.execute(
            select(ShortLink.sealed_target, ShortLink.official_id).where(ShortLink.code_hash == hashed)
        )
    ).one()
    if row.official_id != official_id or unseal(secret, code, row.sealed_target, official_id) != target_url:
        raise CodeTaken("another target holds this short link's code")
    await session.execute(  # the target's expiry, if it moved later since
        update(ShortLink)
        .where(ShortLink.code_hash == hashed, ShortLink.expires_at < expires_at)
        .values(expires_at=expires_at)
    )
    return short_url(target_url, code)


async def short_link_target(session: AsyncSession, code: str, *, secret: bytes, now: dt.datetime) -> str:
    """The target of a live short link; UnknownShortLink for any other code. Reads only."""
    if not well_formed(code):
        raise UnknownShortLink("not a short link code")
    row = (
        await session.execute(
            select(ShortLink.sealed_target, ShortLink.official_id, ShortLink.expires_at).where(
                ShortLink.code_hash == code_hash(secret, code)
            )
        )
    ).one_or_none()
    if row is None or row.expires_at <= now:
        raise UnknownShortLink("no live short link has this code")
    target = unseal(secret, code, row.sealed_target, row.official_id)
    if target is None:
        raise UnknownShortLink("the short link's row does not open with its code")
    return target
