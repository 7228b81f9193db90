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

import email.policy
import logging
from collections.abc import Awaitable, Callable
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from typing import TYPE_CHECKING

from approvals.db import utcnow
from approvals.errors import InvalidLink
from approvals.tokens import reply_token_of
from notifications.replies import applying

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
    """The message's Message-ID as the replies' table keeps it (a digest of it when it has none),
    for the log."""
    return applying.message_id_of(BytesHeaderParser(policy=email.policy.default).parsebytes(raw), raw)


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
    """The one handler `kehoach inbound` gives its readers: each reply applied once
    (`notifications.replies.applying`: its gates, its decision through the page's own path, its
    answer or receipt), and a line in the log saying what became of it. A reply the gates refuse
    has been handled (its row and its answer are written), so it is acknowledged too; only a
    failure to reach the database raises, and the message is offered again."""

    async def handle(raw: bytes, recipient: str) -> None:
        outcome = await applying.apply_reply(
            db, raw, now=utcnow(), plan=plan, settings=settings, emails=emails, recipient_address=recipient
        )
        log.info(
            "reply %s to %s: %s%s%s",
            outcome.message_id,
            recipient or "-",
            outcome.handling.value,
            f" ({outcome.detail})" if outcome.detail else "",
            ", answered" if outcome.answered else "",
        )

    return handle
