"""A real IMAP server for the tests: Debian's Dovecot (`dovecot-imapd`), one instance in a temp
dir of its own, started as `service.local_mailbox.LocalDovecot` starts the mail catcher's (its
configuration, passwd-file, runtime sockets and log there too), with one user and its maildir.

It listens on 127.0.0.1 only: on `port` in plaintext, with plaintext logins allowed and STARTTLS
offered, and on `tls_port` with implicit TLS (IMAPS, as 993), both with a server certificate for
127.0.0.1 issued by a CA made for this instance (`ca_file`, tests/notifications/tls.py). Mail gets
into a mailbox by IMAP APPEND from the test, which is a real delivery path (Dovecot writes the
maildir and the indexes as for a delivery).
"""

from __future__ import annotations

import imaplib
import shutil
import tempfile
from pathlib import Path

from service.local_mailbox import LocalDovecot, MailUser, dovecot_program
from service.prefect_server import free_port
from tests.notifications.tls import make_certificates

USER = "duyet"
PASSWORD = 'pa\\ss "word"'  # a backslash and quotes: LOGIN must quote them


class Dovecot(LocalDovecot):
    """One Dovecot instance; `start()`, `stop()`, and `start()` again on the same port and mail;
    `remove()` at the end."""

    def __init__(self, *, port: int | None = None):
        # A folder of its own, not pytest's: as root, Dovecot's auth and mail processes run as its
        # unprivileged users and must reach it (pytest's temp dirs are root's alone).
        home = Path(tempfile.mkdtemp(prefix="kehoach-dovecot-"))
        self.mail = home / "mail"
        self.mail.mkdir()
        # The server's certificate, and the CA that issued it, which a client must be told to trust.
        (home / "tls").mkdir()
        self.ca_file, cert, key = make_certificates(home / "tls")
        super().__init__(
            home,
            [MailUser(USER, PASSWORD, self.mail / USER)],
            port=port or free_port(),
            tls_port=free_port(),
            certificate=(cert, key),
        )

    @staticmethod
    def available() -> bool:
        return dovecot_program() is not None

    def remove(self) -> None:
        """Stop it and delete its mail."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    # ---------------------------------------------------------------- the test's own IMAP client

    def client(self) -> imaplib.IMAP4:
        """A logged-in stdlib client (the tests' side: delivering and looking, never the product's)."""
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        imap.login(USER, PASSWORD)
        return imap

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        imap = self.client()
        try:
            status, answer = imap.append(_quoted(folder), "", None, raw)
            assert status == "OK", answer
        finally:
            imap.logout()

    def messages(self, folder: str) -> list[tuple[int, set[str], bytes]]:
        """(UID, flags, the message's bytes) of each message in `folder` (modified UTF-7 name), in UID order."""
        imap = self.client()
        try:
            status, _ = imap.select(_quoted(folder), readonly=True)
            if status != "OK":
                return []
            status, data = imap.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            found = []
            for item in data:
                if isinstance(item, tuple):
                    head = item[0].decode()
                    uid = int(head.split("UID ")[1].split()[0])
                    flags = set(head.split("FLAGS (")[1].split(")")[0].split())
                    found.append((uid, flags, item[1]))
            return sorted(found)
        finally:
            imap.logout()

    def capabilities(self) -> set[str]:
        imap = self.client()
        try:
            _, data = imap.capability()  # after login: the session's, not the greeting's
            return set(data[0].decode().upper().split())
        finally:
            imap.logout()


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
