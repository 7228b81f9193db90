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
import time
import uuid
from collections.abc import Callable
from email.utils import parseaddr

from approvals.errors import InvalidLink

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


# The reply address: every email that asks for a decision has its own Reply-To,
# `duyet+<token>@<reply domain>`, one per assignment and generation. Its token is derived as the
# link token is, under its own label (neither opens what the other does), kept only as a SHA-256
# (`Assignment.reply_token_hash`, set with the link's and dying with it) and written into the email
# by the dispatcher from a placeholder, so the outbox never holds it either.
#
# Mail systems may lowercase or case-fold a local part, so the token is lowercase base32 (RFC 4648,
# no padding) and read back case-insensitively. It is the MAC's first 20 bytes (160 bits, 32
# characters): `duyet+` and the token stay far under the 64-octet local part (RFC 5321 4.5.3.1.1).
# 160 bits is enough: without the key, each guess names one of n live tokens with probability
# n / 2^160 (a million live tokens and a billion guesses: about 2^-100), and HMAC-SHA-256 cut to
# 160 bits keeps that strength (RFC 2104 section 5, NIST SP 800-107). The SHA-256 kept of it
# cannot be searched back to a 160-bit token either.

REPLY_ADDRESS = "reply_address"
REPLY_TOKEN_BYTES = 20
_REPLY_TOKEN = re.compile(r"^[a-z2-7]{32}$", re.IGNORECASE | re.ASCII)  # base32 of 20 bytes, no padding
_LOCAL_PART = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,29}[a-z0-9])?$", re.ASCII)


class NotAReplyAddress(InvalidLink):
    """An address that is not one of kehoach's reply addresses (another local part or domain, no
    token, or a token of the wrong shape): it is answered as any dead link is."""


def derive_reply_token(secret: bytes, assignment_id: uuid.UUID, generation: int) -> str:
    digest = hmac.new(secret, f"kehoach-reply:{assignment_id}:{generation}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:REPLY_TOKEN_BYTES]).decode().lower()  # 20 bytes: no padding


def reply_token_well_formed(token: str) -> bool:
    """Whether `token` has a reply token's shape (in any case: a mail system may have changed it)."""
    return bool(_REPLY_TOKEN.match(token))


def hash_reply_token(token: str) -> str:
    """The SHA-256 kept of a reply token, of its one spelling (lowercase), whatever case it came in."""
    return hash_token(token.lower())


def valid_local_part(local_part: str) -> bool:
    """A local part a reply address can start with: lowercase letters, digits, '.', '_', '-', at
    most 31 characters (with '+' and the token, 64 octets at most), and no '+' of its own."""
    return bool(_LOCAL_PART.match(local_part))


def reply_address(token: str, *, local_part: str, domain: str) -> str:
    return f"{local_part}+{token}@{domain}"


def reply_token_of(address: str, *, local_part: str, domain: str) -> str:
    """The token of one of our reply addresses, bare or with a display name (`Duyet+TOKEN@Domain`
    as well: local parts and domains are read case-insensitively), lowercase; NotAReplyAddress for
    any other address, and for every address when there is no reply domain (replies are off)."""
    local, at, host = parseaddr(address)[1].rpartition("@")
    base, plus, token = local.partition("+")
    ours = (base.lower(), host.lower().rstrip(".")) == (local_part.lower(), domain.lower())
    if not (domain and at and plus and ours):
        raise NotAReplyAddress(f"{address!r} is not a reply address of {local_part}+…@{domain}")
    if not reply_token_well_formed(token):
        raise NotAReplyAddress(f"{address!r} does not carry a well-formed reply token")
    return token.lower()


def reply_address_resolver(secret: bytes, *, local_part: str, domain: str) -> Callable[[str], str]:
    """Turns a reply-address placeholder argument ("id:generation") into the address, at send
    time; with no reply domain (replies are off) into "", and the email goes without a Reply-To."""

    def resolve(argument: str) -> str:
        if not domain:
            return ""
        row_id, generation = argument.rsplit(":", 1)
        token = derive_reply_token(secret, uuid.UUID(row_id), int(generation))
        return reply_address(token, local_part=local_part, domain=domain)

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


# The official's queue ("Việc chờ đồng chí"): every open step of theirs on one page. Two signed
# tokens reach it, neither stored: the queue link of the daily digest (valid `queue_link_hours`
# after it is sent, its GET shows a button) and the queue session made from it, or from any live
# approval link, by a POST (valid `queue_session_minutes`). Each names the official and its expiry
# (Unix seconds) under its own label, so one never opens what the other does; a session is
# never a password: whoever holds a live link of the official may see their queue anyway.

QUEUE_LINK = "queue_link"
_SIGNED_SUBJECT = re.compile(r"^([A-Za-z0-9_-]{1,120})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$")


# A subject (an official's id, a report's cycle and agency) signed under a label until a time:
# "<subject, base64url>.<expires>.<HMAC-SHA256>". Nothing is stored; the label keeps a token made
# for one use (a queue session, a queue link, a report link) from being read as another.


def _subject_mac(secret: bytes, label: str, subject: str, expires: int) -> str:
    digest = hmac.new(secret, f"kehoach-{label}:{subject}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _signed_subject(secret: bytes, label: str, subject: str, expires: int) -> str:
    name = base64.urlsafe_b64encode(subject.encode()).rstrip(b"=").decode()
    return f"{name}.{expires}.{_subject_mac(secret, label, subject, expires)}"


def _read_signed_subject(secret: bytes, label: str, token: str, now: float) -> str | None:
    found = _SIGNED_SUBJECT.match(token)
    if not found:
        return None
    name, expires, mac = found.groups()
    try:
        subject = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if not hmac.compare_digest(mac, _subject_mac(secret, label, subject, int(expires))):
        return None
    return subject if now < int(expires) else None


def queue_session_token(secret: bytes, official_id: str, expires: int) -> str:
    """An official's queue session, until `expires` (Unix seconds)."""
    return _signed_subject(secret, "queue-session", official_id, expires)


def read_queue_session(secret: bytes, token: str, *, now: float) -> str | None:
    """The official of a genuine, unexpired queue session, else None (checked in constant time)."""
    return _read_signed_subject(secret, "queue-session", token, now)


def queue_link_token(secret: bytes, official_id: str, expires: int) -> str:
    """The digest's queue link of an official, until `expires` (Unix seconds)."""
    return _signed_subject(secret, "queue-link", official_id, expires)


def read_queue_link(secret: bytes, token: str, *, now: float) -> str | None:
    """The official of a genuine, unexpired queue link, else None (checked in constant time)."""
    return _read_signed_subject(secret, "queue-link", token, now)


def queue_link_resolver(
    secret: bytes, base_url: str, *, ttl_seconds: int, clock: Callable[[], float] = time.time
) -> Callable[[str], str]:
    """Turns a queue-link placeholder argument ("official:YYYYMMDD", the digest's day) into the
    link, at send time: valid `ttl_seconds` from then."""

    def resolve(argument: str) -> str:
        official_id = argument.rsplit(":", 1)[0]
        token = queue_link_token(secret, official_id, int(clock()) + ttl_seconds)
        return f"{base_url.rstrip('/')}/q/{token}"

    return resolve


# The issued report's download link, for a recipient when the report is too large to attach
# (`notifications.emails.Emails.report_issued`): it names the cycle and the recipient agency and
# expires; the page serves that cycle's issued files and nothing else.

REPORT_LINK = "report_link"


def report_link_token(secret: bytes, cycle_id: str, agency_id: str, expires: int) -> str:
    """A recipient agency's link to a cycle's issued report, until `expires` (Unix seconds)."""
    return _signed_subject(secret, "report-link", f"{cycle_id}:{agency_id}", expires)


def read_report_link(secret: bytes, token: str, *, now: float) -> tuple[str, str] | None:
    """(cycle id, agency id) of a genuine, unexpired report link, else None (constant time)."""
    subject = _read_signed_subject(secret, "report-link", token, now)
    if subject is None or ":" not in subject:
        return None
    cycle_id, agency_id = subject.split(":", 1)
    return cycle_id, agency_id


def report_link_resolver(
    secret: bytes, base_url: str, *, ttl_seconds: int, clock: Callable[[], float] = time.time
) -> Callable[[str], str]:
    """Turns a report-link placeholder argument ("cycle_id:agency_id") into the download page's
    link, at send time: valid `ttl_seconds` from then."""

    def resolve(argument: str) -> str:
        cycle_id, agency_id = argument.split(":", 1)
        token = report_link_token(secret, cycle_id, agency_id, int(clock()) + ttl_seconds)
        return f"{base_url.rstrip('/')}/bao-cao/{token}"

    return resolve
