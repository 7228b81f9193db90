"""An IMAP server of our own on this machine: Debian's Dovecot (`apt-get install dovecot-imapd`),
one instance in a folder of its own (its configuration, its passwd-file, its runtime sockets and
its log), serving Maildirs that already exist. Not a server we wrote: Dovecot, started as `dovecot
-F -c CONF` (in the foreground: our child, stopped with us, with its own sessions), and waited on
until it greets. It listens on 127.0.0.1 only, with plaintext logins allowed; with a certificate
it also offers STARTTLS, and implicit TLS on `tls_port`.

Two users of it: the mail catcher of `kehoach demo` and `kehoach rehearse` (`catcher_mailbox`),
so a developer can read the caught mail in a mail client and `kehoach inbound` can read the
replies the catcher filed into its `Replies` folder; and the tests (tests/support/dovecot.py).

As root, Dovecot's own unprivileged users run its login and internal processes, as the package
installs them, and mail is read as the `dovecot` user (Dovecot never reads mail as root): the
Maildirs are given to that user and must be reachable by it. As anyone else, every process is
that user.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from notifications.catcher import REPLIES_FOLDER

if TYPE_CHECKING:
    from approvals.config import Settings

DOVECOT = "/usr/sbin/dovecot"
CATCHER_USER = "kehoach"
DH_PARAMETERS = Path("/usr/share/dovecot/dh.pem")  # Debian's, for a client that asks for DHE

log = logging.getLogger("kehoach.local_mailbox")


def dovecot_program() -> str | None:
    """Where Dovecot is installed, or None."""
    return shutil.which("dovecot") or (DOVECOT if Path(DOVECOT).exists() else None)


@dataclass(frozen=True)
class MailUser:
    name: str
    password: str
    maildir: Path  # the user's Maildir: INBOX is its root, a folder F its `.F` (Maildir++)


def _conf(home: Path, *, port: int, tls_port: int, tls: bool) -> str:
    if os.getuid() == 0:
        users = ""  # the package's defaults: dovenull for logins, dovecot for internal processes
        mail_ids = "mail_uid = dovecot\nmail_gid = dovecot\n"
    else:
        mail_ids = ""
        me = getpass.getuser()
        users = f"default_login_user = {me}\ndefault_internal_user = {me}\ndefault_internal_group = {me}\n"
    if tls:
        dh = f"ssl_dh = <{DH_PARAMETERS}\n" if DH_PARAMETERS.exists() else ""
        ssl = (
            f"ssl = yes\nssl_cert = <{home}/server.pem\nssl_key = <{home}/server.key\n{dh}ssl_min_protocol = TLSv1.2\n"
        )
        imaps = f"    address = 127.0.0.1\n    port = {tls_port}\n    ssl = yes\n"
    else:
        ssl, imaps = "ssl = no\n", "    port = 0\n"
    return f"""\
base_dir = {home}/run
state_dir = {home}/state
instance_name = kehoach-{port}
log_path = {home}/dovecot.log
info_log_path = {home}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 0
first_valid_gid = 0
{users}{mail_ids}mail_location = maildir:~
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
{imaps}  }}
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


class LocalDovecot:
    """One Dovecot instance in `home` (made if missing); `start()`, `stop()`, and `start()` again
    on the same port and mail. `certificate` is (server.pem, server.key) copied into `home`: TLS
    offered (STARTTLS on `port`, implicit TLS on `tls_port`)."""

    def __init__(
        self,
        home: Path,
        users: list[MailUser],
        *,
        port: int,
        tls_port: int = 0,
        certificate: tuple[Path, Path] | None = None,
        program: str | None = None,
    ):
        self.home, self.port, self.tls_port, self.users = home, port, tls_port, users
        self.program = program or dovecot_program() or DOVECOT
        self.process: subprocess.Popen[bytes] | None = None
        for sub in ("run", "state"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        if certificate is not None:
            shutil.copyfile(certificate[0], home / "server.pem")
            shutil.copyfile(certificate[1], home / "server.key")
        lines = []
        for user in users:
            for sub in ("cur", "new", "tmp"):
                (user.maildir / sub).mkdir(parents=True, exist_ok=True)
            if os.getuid() == 0:
                home.chmod(0o755)
                _give_to_dovecot(user.maildir)
                ids = ":"  # mail_uid and mail_gid in the configuration
            else:
                ids = f"{os.getuid()}:{os.getgid()}"
            lines.append(f"{user.name}:{{PLAIN}}{user.password}:{ids}::{user.maildir}::\n")
        (home / "users").write_text("".join(lines))
        (home / "users").chmod(0o600)  # its passwords: for Dovecot's auth process alone
        if os.getuid() == 0:
            _give_to_dovecot(home / "users")  # which runs as the dovecot user
        self.conf = home / "dovecot.conf"
        self.conf.write_text(_conf(home, port=port, tls_port=tls_port, tls=certificate is not None))

    def start(self, timeout: float = 30.0) -> None:
        """Started and greeting on `port`; RuntimeError (with its log's tail) when it does not."""
        output = open(self.home / "dovecot.stdout", "ab")
        # A process group of its own: stopping it ends its sessions too (Dovecot's imap processes
        # outlive their master).
        self.process = subprocess.Popen(
            [self.program, "-F", "-c", str(self.conf)], stdout=output, stderr=output, start_new_session=True
        )
        output.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise RuntimeError(f"dovecot exited with {code}: {self.log_tail()}")
            if self.greets():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not greet on port {self.port} within {timeout} s: {self.log_tail()}")

    def greets(self) -> bool:
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
        deadline = time.monotonic() + 10  # its imap and imap-login processes end with it: the port frees
        while time.monotonic() < deadline and self.greets():
            time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.home / "dovecot.log").read_text().splitlines()[-lines:])
        return ""


def _give_to_dovecot(given: Path) -> None:
    """As root: a file, or a Maildir with its folders and messages, to the `dovecot` user."""
    dovecot = pwd.getpwnam("dovecot")
    for path in [given, *(given.rglob("*") if given.is_dir() else [])]:
        os.chown(path, dovecot.pw_uid, dovecot.pw_gid)


def catcher_mailbox(settings: Settings, *, program: str | None = None) -> tuple[LocalDovecot | None, str]:
    """The mail catcher's Maildir served over IMAP on 127.0.0.1:`mail_catcher_imap_port`, started
    (stop it with `stop()`, then delete its `home`), and a line saying how to read it; or None
    and why not (no Dovecot installed, the port off, Dovecot refused to start). `program` is the
    Dovecot to run (default: the installed one)."""
    port = settings.mail_catcher_imap_port
    if not port:
        return None, "no IMAP (KEHOACH_MAIL_CATCHER_IMAP_PORT=0)"
    program = program or dovecot_program()
    if program is None or not Path(program).exists():
        return None, (
            "no IMAP: Dovecot is not installed (apt-get install dovecot-imapd); the caught mail is on the "
            "/mail page, and replies reach `kehoach inbound` only over LMTP"
        )
    maildir = settings.mail_dir.resolve()
    if os.getuid() == 0 and not all(parent.stat().st_mode & 0o001 for parent in maildir.parents):
        return None, f"no IMAP: as root, Dovecot reads mail as the dovecot user, who cannot reach {maildir}"
    password = secrets.token_urlsafe(12)
    # Dovecot's sockets are in its folder: a short path of its own (a socket's path has 108 bytes at most).
    server = LocalDovecot(
        Path(tempfile.mkdtemp(prefix="kehoach-imap-")),
        [MailUser(CATCHER_USER, password, maildir)],
        port=port,
        program=program,
    )
    try:
        server.start()
    except RuntimeError as exc:
        shutil.rmtree(server.home, ignore_errors=True)
        return None, f"no IMAP: Dovecot did not start on port {port}: {exc}"
    replies = (
        f"; replies to …@{settings.reply_domain} are in its folder {REPLIES_FOLDER}: KEHOACH_IMAP_HOST=127.0.0.1 "
        f"KEHOACH_IMAP_PORT={port} KEHOACH_IMAP_TLS=none KEHOACH_IMAP_USER={CATCHER_USER} "
        f"KEHOACH_IMAP_PASSWORD={password} KEHOACH_IMAP_FOLDER={REPLIES_FOLDER} kehoach inbound"
        if settings.reply_domain
        else " (KEHOACH_REPLY_DOMAIN is empty: no email asks for a reply)"
    )
    return server, f"IMAP on 127.0.0.1:{port}, user {CATCHER_USER}, password {password}{replies}"
