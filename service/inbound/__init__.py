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
    answer or receipt), with a line in the log saying what became of it. A reply the gates refuse
    has been handled (its row and its answer are written), so it is acknowledged too; only a
    failure to reach the database raises, and the message is offered again."""

    async def handle(raw: bytes, recipient: str) -> None:
        # apply_reply logs what became of the reply (applied, or which gate refused it, answered or not).
        await applying.apply_reply(
            db, raw, now=utcnow(), plan=plan, settings=settings, emails=emails, recipient_address=recipient
        )

    return handle


def make_outage_alert(settings: Settings, db: Database, emails: Emails) -> Callable[[str], Awaitable[None]]:
    """What the IMAP reader calls when the mailbox has been unreachable for a while: the
    coordinators' alert, queued once a day per mailbox (its outbox key), however many readers
    notice the same outage."""

    async def tell(why: str) -> None:
        mailbox = f"{settings.imap_user}@{settings.imap_host}/{settings.imap_folder}"
        async with db.transaction() as session:
            queued = await emails.replies_unread(session, mailbox=mailbox, detail=why, at=utcnow())
        log.warning("the mailbox is unreachable (%s): %d alert(s) to the coordinators queued", why, queued)

    return tell
