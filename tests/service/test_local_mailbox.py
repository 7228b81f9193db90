"""The mail catcher's own IMAP server (issue 23), as `kehoach demo` and `kehoach rehearse` start it
(`service.local_mailbox.catcher_mailbox`): Dovecot serves the catcher's Maildir, a message sent to
a reply address is filed into its `Replies` folder as well, and `kehoach inbound`'s IMAP reader
reads the replies there and nothing else, while the /mail page still shows everything. Without
Dovecot, or when it cannot start, the stack says so and goes on without IMAP."""

from __future__ import annotations

import asyncio
import imaplib
import shutil
import smtplib
import socket
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from approvals.config import Settings
from notifications.catcher import REPLIES_FOLDER, MailCatcher, read_inbox
from service.inbound.imap import ImapConfig, ImapReader
from service.local_mailbox import CATCHER_USER, catcher_mailbox
from service.prefect_server import free_port

REPLY_DOMAIN = "reply.lang-son.example"
REPLY_ADDRESS = f"duyet+abcdefghijklmnopqrstuvwxyz234567@{REPLY_DOMAIN}"


@pytest.fixture
def settings():
    # A folder of its own, reachable by others: as root, Dovecot reads mail as its dovecot user.
    data = Path(tempfile.mkdtemp(prefix="kehoach-catcher-"))
    data.chmod(0o755)
    yield Settings(
        data_dir=data,
        smtp_port=free_port(),
        mail_catcher_imap_port=free_port(),
        reply_domain=REPLY_DOMAIN,
        link_secret="x" * 48,
    )
    shutil.rmtree(data, ignore_errors=True)


def email(to: str, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Giám đốc <giamdoc@sokhcn.langson.gov.vn>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@sokhcn.langson.gov.vn>"
    message.set_content("Đồng ý\n")
    return message


@pytest.mark.processes
async def test_the_catcher_s_maildir_is_served_over_imap_with_the_replies_in_their_folder(settings):
    catcher = MailCatcher(settings.mail_dir, port=settings.smtp_port, reply_domain=settings.reply_domain)
    catcher.start()
    server, said = await asyncio.to_thread(catcher_mailbox, settings)
    try:
        assert server is not None, said
        password = server.users[0].password
        assert f"IMAP on 127.0.0.1:{settings.mail_catcher_imap_port}, user {CATCHER_USER}" in said
        assert f"KEHOACH_IMAP_PASSWORD={password} KEHOACH_IMAP_FOLDER={REPLIES_FOLDER} kehoach inbound" in said
        with smtplib.SMTP("127.0.0.1", settings.smtp_port, timeout=10) as client:
            client.send_message(email("chuyenvien@lang-son.example", "thu thuong"))
            client.send_message(email(REPLY_ADDRESS, "Re tra loi"))

        received: list[tuple[bytes, str]] = []

        async def handle(raw: bytes, recipient: str) -> None:
            received.append((raw, recipient))

        config = ImapConfig(
            host="127.0.0.1",
            port=settings.mail_catcher_imap_port,
            tls="none",
            user=CATCHER_USER,
            password=password,
            folder=REPLIES_FOLDER,
            reply_domain=REPLY_DOMAIN,
            timeout=5.0,
        )
        reader = ImapReader(config, handle)
        stop = asyncio.Event()
        task = asyncio.create_task(reader.run(stop))
        deadline = time.monotonic() + 20
        while reader.stats["handled"] < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)
        assert [(b"Subject: Re tra loi" in raw, recipient) for raw, recipient in received] == [(True, REPLY_ADDRESS)]

        imap = imaplib.IMAP4("127.0.0.1", settings.mail_catcher_imap_port, timeout=10)
        try:
            imap.login(CATCHER_USER, password)
            assert imap.select("INBOX", readonly=True) == ("OK", [b"2"])  # everything caught
            assert imap.select(REPLIES_FOLDER, readonly=True) == ("OK", [b"0"])  # the reply handled and filed
        finally:
            imap.logout()
        assert sorted(m.message["Subject"] for m in read_inbox(settings.mail_dir)) == ["Re tra loi", "thu thuong"]
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)
            shutil.rmtree(server.home, ignore_errors=True)
        catcher.stop()


def test_without_dovecot_the_stack_says_so_and_serves_no_imap(settings, tmp_path):
    server, said = catcher_mailbox(settings, program=str(tmp_path / "no-dovecot-here"))
    assert server is None
    assert said.startswith("no IMAP: Dovecot is not installed (apt-get install dovecot-imapd)")


def test_with_its_port_off_it_serves_no_imap(settings):
    server, said = catcher_mailbox(settings.model_copy(update={"mail_catcher_imap_port": 0}))
    assert (server, said) == (None, "no IMAP (KEHOACH_MAIL_CATCHER_IMAP_PORT=0)")


@pytest.mark.processes
def test_when_dovecot_cannot_start_the_stack_says_why(settings):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", settings.mail_catcher_imap_port))  # someone else's port
        server, said = catcher_mailbox(settings)
    assert server is None
    assert said.startswith(f"no IMAP: Dovecot did not start on port {settings.mail_catcher_imap_port}")
