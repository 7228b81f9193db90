"""`kehoach inbound`: receiving the officials' emailed replies (issue 23).

Two ways in, one way on. The IMAP reader (`imap`) takes replies from a mailbox; the LMTP server
(`lmtp`) takes them from the local mail relay. Both hand each message, as its raw bytes and the
reply address it was sent to, to one `Handler` and acknowledge the message only once the handler
returned: the IMAP reader then moves it to the done folder, the LMTP server answers 250. A handler
that raises leaves the message where it was (unseen in the mailbox; a 451 to the relay, which
retries), so nothing is lost, and the same message may reach the handler again: the handler is
the one that makes a reply count once (it deduplicates on Message-ID), so any number of readers
and servers, on any number of machines, may run at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import TYPE_CHECKING

from approvals.errors import InvalidLink
from approvals.tokens import reply_token_of

if TYPE_CHECKING:
    from approvals.config import Settings
    from approvals.db import Database
    from approvals.plan import Plan
    from notifications.emails import Emails

log = logging.getLogger("kehoach.inbound")

Handler = Callable[[bytes, str], Awaitable[None]]
"""Applies one received message: `handle(raw, recipient)`, where `recipient` is the reply address
it came to (the LMTP envelope's, or the one found in its headers; "" when none is ours). Returning
means the message may be acknowledged; raising means it must be offered again later."""

# Where a mailbox's copy of a message says whom it was delivered to, the most reliable first.
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "To", "Cc")


def message_id_of(raw: bytes) -> str:
    """The message's Message-ID, for the log ("(no Message-ID)" when it has none)."""
    headers = BytesHeaderParser().parsebytes(raw)
    return str(headers.get("Message-ID", "")).strip() or "(no Message-ID)"


def reply_recipient(raw: bytes, *, local_part: str, domain: str) -> str:
    """The first of our reply addresses among the headers that name a recipient, else ""."""
    headers = BytesHeaderParser().parsebytes(raw)
    for name in RECIPIENT_HEADERS:
        for _, address in getaddresses([str(value) for value in headers.get_all(name, [])]):
            try:
                reply_token_of(address, local_part=local_part, domain=domain)
            except InvalidLink:
                continue
            return address
    return ""


def make_handler(settings: Settings, db: Database, plan: Plan, emails: Emails) -> Handler:
    """The one handler `kehoach inbound` gives its readers: this is where applying a reply (its
    gates, its decision through the page's own path, its answers) joins the receiving side. As
    it stands it logs each message and records nothing, so every message is acknowledged."""

    async def handle(raw: bytes, recipient: str) -> None:
        log.info("received %s for %s (%d bytes): not applied", message_id_of(raw), recipient or "-", len(raw))

    return handle
