"""Whether the receiving host saw the reply's sender authenticated: DMARC, or DKIM aligned with From.

The receiving host (the province's own MX) records what it checked in an `Authentication-Results`
header (RFC 8601), named by its authserv-id and put above every header already in the message.
Anyone can write such a header into the mail they send, so only a header whose authserv-id is
configured as trusted counts, and of those only the topmost: a forged one sits below the MX's own,
whatever id it claims. (The MX should also remove headers that claim its id, RFC 8601 §5; this
does not rely on it as long as the MX adds its own.)

The reply passes when that header says `dmarc=pass` (for the From domain, if it names one), or
`dkim=pass` with a signing domain (`header.d`, else the domain of `header.i`) aligned with the From
domain: the same organizational domain, by the public suffix list (DMARC's relaxed alignment). A
`dmarc=fail` fails, whatever DKIM says.

The header is parsed here (a small RFC 8601 reader: `authserv-id [version]; method=result
reason=… ptype.property=value …; …`, comments in parentheses), since the `authres` package is not
installed; signatures are not verified here either (`dkimpy` is not installed).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses

from publicsuffixlist import PublicSuffixList


@dataclass(frozen=True)
class MethodResult:
    """One `method=result` of a header, with its properties (`header.d` -> `langson.gov.vn`)."""

    method: str  # lower case, without a version ("dkim", "dmarc", "spf")
    result: str  # lower case ("pass", "fail", "none", …)
    properties: dict[str, str] = field(default_factory=dict)  # "ptype.property", lower case -> value


@dataclass(frozen=True)
class AuthenticationResults:
    authserv_id: str  # lower case
    results: tuple[MethodResult, ...]


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str  # for the log: what passed, or why nothing did


def _without_comments(value: str) -> str:
    """CFWS comments, nested, taken out; quoted strings kept whole (a "(" in one is not a comment)."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                out.append(char)
            continue
        if quoted:
            quoted = char != '"'
            out.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            if depth == 0:
                out.append(" ")
        elif depth == 0:
            quoted = char == '"'
            out.append(char)
    return "".join(out)


def _split_outside_quotes(value: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquoted(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


_PAIR = re.compile(
    r"""\s*(?P<key>[A-Za-z0-9_-]+(?:\s*/\s*[0-9]+)?(?:\s*\.\s*[A-Za-z0-9_-]+)?)\s*=\s*
        (?P<value>"(?:[^"\\]|\\.)*"|[^\s";]+)""",
    re.VERBOSE,
)


def _resinfo(text: str) -> MethodResult | None:
    pairs = [(re.sub(r"\s+", "", m["key"]).lower(), _unquoted(m["value"])) for m in _PAIR.finditer(text)]
    if not pairs:
        return None
    (method, result), *rest = pairs
    properties = {key: value for key, value in rest if "." in key}
    return MethodResult(method=method.split("/")[0], result=result.lower(), properties=properties)


def parse_authentication_results(value: str) -> AuthenticationResults | None:
    """One header's value, or None when it names no authserv-id. A method it cannot read is left out."""
    parts = _split_outside_quotes(_without_comments(" ".join(value.split())), ";")
    head = parts[0].split()
    if not head:
        return None
    results = tuple(r for r in (_resinfo(part) for part in parts[1:]) if r is not None)
    return AuthenticationResults(authserv_id=_unquoted(head[0]).lower().rstrip("."), results=results)


def trusted_results(message: EmailMessage, trusted_authserv_ids: Iterable[str]) -> AuthenticationResults | None:
    """The topmost `Authentication-Results` header whose authserv-id is trusted, or None."""
    trusted = {authserv_id.lower().rstrip(".") for authserv_id in trusted_authserv_ids}
    for value in message.get_all("Authentication-Results", []):
        parsed = parse_authentication_results(str(value))
        if parsed is not None and parsed.authserv_id in trusted:
            return parsed
    return None


def from_domain(message: EmailMessage) -> str | None:
    """The domain of the one From address (None for none, several, or no domain)."""
    addresses = getaddresses([str(value) for value in message.get_all("From", [])])
    if len(addresses) != 1 or "@" not in addresses[0][1]:
        return None
    return addresses[0][1].rpartition("@")[2].lower().rstrip(".") or None


def organizational_domain(domain: str) -> str | None:
    """RFC 7489 §3.2: the public suffix (Mozilla's list, as the `publicsuffixlist` package carries
    it: nothing is fetched) and one label more: `langson.gov.vn` for `sokhcn.langson.gov.vn`. A
    public suffix itself (`gov.vn`, `com.vn`) has none."""
    return _suffixes().privatesuffix(domain.lower().strip(".").lstrip("@"))


def aligned(signing_domain: str, author_domain: str) -> bool:
    """DMARC's relaxed alignment: the same organizational domain. A signature by a public suffix
    (`d=gov.vn`) aligns with no one's address under it, and two agencies under one (`x.gov.vn`,
    `y.gov.vn`) are two organizations."""
    own = organizational_domain(signing_domain)
    return own is not None and own == organizational_domain(author_domain)


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def _signing_domain(result: MethodResult) -> str:
    if "header.d" in result.properties:
        return result.properties["header.d"]
    return result.properties.get("header.i", "").rpartition("@")[2]


def authenticate(message: EmailMessage, *, trusted_authserv_ids: Iterable[str]) -> Verdict:
    """Whether DMARC, or a DKIM signature aligned with From, passed at a trusted receiving host."""
    header = trusted_results(message, trusted_authserv_ids)
    if header is None:
        return Verdict(False, "no Authentication-Results header from a trusted authserv-id")
    domain = from_domain(message)
    if domain is None:
        return Verdict(False, "From does not name exactly one address")
    dmarc = [r for r in header.results if r.method == "dmarc"]
    if any(r.result == "fail" for r in dmarc):
        return Verdict(False, f"dmarc=fail at {header.authserv_id}")
    for r in dmarc:
        if r.result == "pass" and r.properties.get("header.from", domain).lower().rstrip(".") == domain:
            return Verdict(True, f"dmarc=pass for {domain} at {header.authserv_id}")
    for r in header.results:
        if r.method == "dkim" and r.result == "pass" and aligned(_signing_domain(r), domain):
            return Verdict(True, f"dkim=pass d={_signing_domain(r)} aligned with {domain} at {header.authserv_id}")
    seen = ", ".join(f"{r.method}={r.result}" for r in header.results) or "none"
    return Verdict(False, f"no dmarc=pass nor DKIM aligned with {domain} at {header.authserv_id} ({seen})")
