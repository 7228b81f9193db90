"""What is sent, from an outbox row: the email's bytes (notifications.mime: 7-bit, RFC 2047
headers), with the placeholders for secrets (link tokens, reply addresses) replaced as it is
written, so no secret ever sits in the outbox. `build()` is the same email as the standard library's
EmailMessage, which the tests compare byte for byte with `serialize()`."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr
from html import escape

from approvals.db import utcnow
from approvals.errors import Refused
from notifications import mime
from notifications.models import ClaimedMessage

PLACEHOLDER = re.compile(r"\[\[secret:([a-z_]+):([A-Za-z0-9:_-]+)\]\]")
_REPLY_TO = re.compile(r"^(?:[!#$%&'*+/=?^_`{|}~.A-Za-z0-9-]+@[A-Za-z0-9.-]+)?$")  # "" or one ASCII address
Resolver = Callable[[str], str]

# 7-bit output (quoted-printable or base64 bodies, RFC 2047 headers): any relay accepts
# it, with or without 8BITMIME.
MIME_POLICY = SMTP_POLICY.clone(cte_type="7bit")


def placeholder(name: str, argument: str) -> str:
    """Text the dispatcher replaces when it sends, so secrets (link tokens) never sit in the outbox."""
    return f"[[secret:{name}:{argument}]]"


class PermanentFailure(Refused):
    """A message that can never be sent as it is (no resolver for its placeholder, a non-ASCII
    address, a bad attachment type): failed at once, never retried."""


def personalise(body: str, resolvers: dict[str, Resolver], *, html: bool = False) -> str:
    """`body` with each placeholder replaced by its resolver's value (HTML-escaped in HTML); a
    placeholder with no resolver is a PermanentFailure. Emails and channel messages use it."""

    def replace(match: re.Match[str]) -> str:
        resolver = resolvers.get(match.group(1))
        if resolver is None:
            raise PermanentFailure(f"no resolver for placeholder '{match.group(1)}'")
        value = resolver(match.group(2))
        return escape(value, quote=True) if html else value

    return PLACEHOLDER.sub(replace, body)


class Composer:
    """Writes the emails of one sender, resolving placeholders with `resolvers` (name -> function)."""

    def __init__(self, sender_name: str, sender: str, resolvers: dict[str, Resolver] | None = None):
        self.sender_name, self.sender = sender_name, sender
        self.resolvers = resolvers or {}
        self._date: tuple[int, str] = (0, "")

    def _personalise(self, body: str, *, html: bool = False) -> str:
        return personalise(body, self.resolvers, html=html)

    def _reply_to(self, message: ClaimedMessage) -> str:
        """The Reply-To address, its placeholder resolved; "" for none (also when the resolver
        gives none: replies were turned off after the email was queued)."""
        address = self._personalise(message.reply_to) if message.reply_to else ""
        if not _REPLY_TO.match(address):
            raise PermanentFailure(f"not a Reply-To address: {address!r}")
        return address

    def build(self, message: ClaimedMessage) -> EmailMessage:
        email = EmailMessage(policy=MIME_POLICY)
        email["Message-ID"] = message.message_id
        email["Date"] = format_datetime(utcnow())
        email["From"] = formataddr((self.sender_name, self.sender))
        if reply_to := self._reply_to(message):
            email["Reply-To"] = reply_to
        email["To"] = ", ".join(formataddr((r["name"], r["email"])) for r in message.recipients)
        email["Subject"] = message.subject
        if message.thread_references:
            email["In-Reply-To"] = message.thread_references.split()[-1]
            email["References"] = message.thread_references
        email["Auto-Submitted"] = "auto-generated"  # RFC 3834: an autoresponder must not answer
        email["X-Auto-Response-Suppress"] = "All"  # Exchange and Outlook: no out-of-office reply either
        email.set_content(self._personalise(message.text_body))
        email.add_alternative(self._personalise(message.html_body, html=True), subtype="html")
        for attachment in message.attachments or ():
            maintype, subtype, params = split_content_type(attachment["content_type"])
            email.add_attachment(
                base64.b64decode(attachment["data"], validate=True),
                maintype=maintype,
                subtype=subtype,
                filename=attachment["filename"],
                params=params,
            )
        return email

    @functools.cached_property
    def _from_header(self) -> str:
        return mime.addresses("From", [(self.sender_name, self.sender)])

    def _date_header(self) -> str:
        """'Date: ...' for this second, written once per second (a batch goes out within a few)."""
        second = int(time.time())
        if self._date[0] != second:
            self._date = (second, mime.header("Date", format_datetime(dt.datetime.fromtimestamp(second, dt.UTC))))
        return self._date[1]

    def serialize(self, message: ClaimedMessage) -> bytes:
        """The bytes `build()` stands for, written directly (notifications.mime): what is sent."""
        for recipient in message.recipients:
            if not recipient["email"].isascii():
                raise PermanentFailure(f"{recipient['email']!r}: addresses must be ASCII (SMTPUTF8 is not used)")
        attachments = []
        for attachment in message.attachments or ():
            maintype, subtype, params = split_content_type(attachment["content_type"])
            attachments.append(
                (attachment["filename"], maintype, subtype, params, base64.b64decode(attachment["data"], validate=True))
            )
        reply_to = self._reply_to(message)
        return mime.compose(
            headers=[
                mime.header("Message-ID", message.message_id),
                self._date_header(),
                self._from_header,
                *([mime.header("Reply-To", reply_to)] if reply_to else []),
                mime.addresses("To", [(r["name"], r["email"]) for r in message.recipients]),
                mime.header("Subject", message.subject),
                *_thread_headers(message),
                "Auto-Submitted: auto-generated",
                "X-Auto-Response-Suppress: All",
            ],
            text=self._personalise(message.text_body),
            html=self._personalise(message.html_body, html=True),
            attachments=attachments,
        )


def _thread_headers(message: ClaimedMessage) -> list[str]:
    """In-Reply-To and References of an email that answers one of its recipient's (RFC 5322 3.6.4)."""
    if not message.thread_references:
        return []
    return [
        mime.header("In-Reply-To", message.thread_references.split()[-1]),
        mime.header("References", message.thread_references),
    ]


def split_content_type(content_type: str) -> tuple[str, str, dict[str, str]]:
    """'text/calendar; method=REQUEST; charset=UTF-8' -> ('text', 'calendar', {'method': 'REQUEST', ...})."""
    kind, *parameters = [part.strip() for part in content_type.split(";")]
    maintype, _, subtype = kind.partition("/")
    params = {}
    for parameter in parameters:
        if parameter:
            name, _, value = parameter.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
    if not maintype or not subtype:
        raise PermanentFailure(f"not a content type: {content_type!r}")
    return maintype.lower(), subtype.lower(), params
