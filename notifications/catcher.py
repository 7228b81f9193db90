"""The built-in mail catcher for local use: a real SMTP server (aiosmtpd) that files
every message it receives into a Maildir, which the service's /mail page shows.

A message sent to a reply address (any address at the reply domain, when one is set) is also
filed into the Maildir's folder `Replies` (Maildir++: `.Replies`): the mailbox the reply
addresses deliver to, which `kehoach inbound` reads over IMAP when the local stack serves the
Maildir with Dovecot (`service.local_mailbox`)."""

from __future__ import annotations

import mailbox
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

REPLIES_FOLDER = "Replies"


class MaildirHandler:
    def __init__(self, maildir: Path, reply_domain: str = ""):
        for sub in ("cur", "new", "tmp"):  # Maildir(create=True) skips these if the folder exists
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        self.box = mailbox.Maildir(str(maildir), create=False)
        self.reply_domain = reply_domain.lower()
        self.replies = self.box.add_folder(REPLIES_FOLDER) if reply_domain else None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # aiosmtpd sets the content before it calls DATA's handler: never None here
        content = envelope.original_content or envelope.content or b""
        self.box.add(content)
        if self.replies is not None and any(
            to.lower().rpartition("@")[2] == self.reply_domain for to in envelope.rcpt_tos
        ):
            self.replies.add(content)
        return "250 Message accepted for delivery"


class MailCatcher:
    def __init__(self, maildir: Path, host: str = "127.0.0.1", port: int = 8025, *, reply_domain: str = ""):
        self.maildir = maildir
        self.controller = Controller(
            MaildirHandler(maildir, reply_domain),
            hostname=host,
            port=port,
            server_hostname="kehoach-mail-catcher",
            ready_timeout=10,
        )

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


@dataclass(frozen=True)
class CaughtMessage:
    key: str
    received: float
    message: EmailMessage

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content().replace("\r\n", "\n") if part else ""  # base64 text keeps its CRLF

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content().replace("\r\n", "\n") if part else ""

    @property
    def attachments(self) -> list[tuple[str | None, str, bytes]]:
        """(file name, content type, data) of each attachment, e.g. a calendar invite."""
        return [
            # kehoach attaches leaf parts only (notifications.mime): decoded, their payload is bytes
            (part.get_filename(), part.get_content_type(), cast(bytes, part.get_payload(decode=True)))
            for part in self.message.iter_attachments()
        ]


def read_inbox(maildir: Path) -> list[CaughtMessage]:
    """Messages in the catcher's Maildir, newest first."""
    if not (maildir / "cur").exists():
        return []
    box = mailbox.Maildir(str(maildir), create=False)
    return sorted((_caught(box, key) for key in box.iterkeys()), key=lambda m: m.received, reverse=True)


def _caught(box: mailbox.Maildir, key: str) -> CaughtMessage:
    entry = box.get_message(key)
    return CaughtMessage(key, entry.get_date(), message_from_bytes(entry.as_bytes(), policy=policy.default))


def read_new(maildir: Path, seen: set[str]) -> list[CaughtMessage]:
    """Messages filed since the last call (their keys are added to `seen`), oldest first: a
    reader that polls parses each message once."""
    if not (maildir / "cur").exists():
        return []
    box = mailbox.Maildir(str(maildir), create=False)
    fresh = [key for key in box.iterkeys() if key not in seen]
    seen.update(fresh)
    return sorted((_caught(box, key) for key in fresh), key=lambda m: m.received)
