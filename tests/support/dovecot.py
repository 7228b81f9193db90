"""A real IMAP server for the tests: Debian's Dovecot (`dovecot-imapd`), one instance in a temp
dir of its own, its configuration, its passwd-file, its maildirs, its runtime sockets and its log.

Started as `dovecot -F -c CONF` (in the foreground: it is our child, stopped with it), waited on
until it greets on its port. It listens on 127.0.0.1 only: on `port` in plaintext, with
plaintext logins allowed and STARTTLS offered, and on `tls_port` with implicit TLS (IMAPS, as
993), both with a server certificate for 127.0.0.1 issued by a CA made for this instance
(`ca_file`, tests/notifications/tls.py). Mail gets into a mailbox by IMAP APPEND from the test,
which is a real delivery path (Dovecot writes the maildir and the indexes as for a delivery).

As root (the CI machine) Dovecot's own unprivileged users run its login and internal processes,
as the package installs them, and the mail user is root (`first_valid_uid = 0`); as anyone else,
every process is that user.
"""

from __future__ import annotations

import contextlib
import getpass
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from service.prefect_server import free_port
from tests.notifications.tls import make_certificates

DOVECOT = "/usr/sbin/dovecot"
USER = "duyet"
PASSWORD = 'pa\\ss "word"'  # a backslash and quotes: LOGIN must quote them


DH_PARAMETERS = Path("/usr/share/dovecot/dh.pem")  # Debian's, for a client that asks for DHE


def _conf(home: Path, mail: Path, port: int, tls_port: int) -> str:
    if os.getuid() == 0:
        users = ""  # the package's defaults: dovenull for logins, dovecot for internal processes
        mail_ids = "mail_uid = dovecot\nmail_gid = dovecot\n"
    else:
        mail_ids = ""
        me = getpass.getuser()
        users = f"default_login_user = {me}\ndefault_internal_user = {me}\ndefault_internal_group = {me}\n"
    return f"""\
base_dir = {home}/run
state_dir = {home}/state
instance_name = kehoach-test-{port}
log_path = {home}/dovecot.log
info_log_path = {home}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{home}/server.pem
ssl_key = <{home}/server.key
{f"ssl_dh = <{DH_PARAMETERS}" if DH_PARAMETERS.exists() else ""}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 0
first_valid_gid = 0
{users}{mail_ids}mail_location = maildir:{mail}/%u
mail_plugins =
mailbox_list_index = yes
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {home}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {home}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
protocol imap {{
  imap_idle_notify_interval = 2 mins
}}
"""


class Dovecot:
    """One Dovecot instance; `start()`, `stop()`, and `start()` again on the same port and mail;
    `remove()` at the end."""

    def __init__(self, *, port: int | None = None):
        # A folder of its own, not pytest's: as root, Dovecot's auth and mail processes run as its
        # unprivileged users and must reach it (pytest's temp dirs are root's alone).
        home = self.home = Path(tempfile.mkdtemp(prefix="kehoach-dovecot-"))
        self.port = port or free_port()
        self.tls_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        for sub in ("run", "state", "mail"):
            (home / sub).mkdir()
        self.mail = home / "mail"
        if os.getuid() == 0:
            home.chmod(0o755)
            dovecot = pwd.getpwnam("dovecot")
            os.chown(self.mail, dovecot.pw_uid, dovecot.pw_gid)  # Dovecot never reads mail as root
            ids = ":"  # mail_uid and mail_gid in the configuration
        else:
            ids = f"{os.getuid()}:{os.getgid()}"
        (home / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:{ids}::{self.mail}/{USER}::\n")
        # The server's certificate, and the CA that issued it, which a client must be told to trust.
        self.ca_file, _, _ = make_certificates(home)
        self.conf = home / "dovecot.conf"
        self.conf.write_text(_conf(home, self.mail, self.port, self.tls_port))

    @staticmethod
    def available() -> bool:
        return shutil.which("dovecot") is not None or Path(DOVECOT).exists()

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.home / "dovecot.stdout", "ab")
        # A process group of its own: stopping it ends its sessions too (Dovecot's imap processes
        # outlive their master), as a real outage of the server would.
        self.process = subprocess.Popen(
            [shutil.which("dovecot") or DOVECOT, "-F", "-c", str(self.conf)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self.process.returncode}: {self.log_tail()}")
            if self._greets():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not greet on port {self.port} within {timeout} s: {self.log_tail()}")

    def _greets(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.settimeout(1)
                return sock.recv(200).startswith(b"* OK")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        group = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)  # the sessions and helpers that outlived their master
        self.process = None
        # Its child processes (imap, imap-login) end with their master; wait until the port is free.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._greets():
            time.sleep(0.05)

    def remove(self) -> None:
        """Stop it and delete its mail."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.home / "dovecot.log").read_text().splitlines()[-lines:])
        return ""

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
