"""The receiving side without Dovecot (the fast tier): the LMTP server in this process answers
each recipient after DATA (250 once handled, 451 when the handler raised, 550 for an address not
ours, 552 over the size limit); the IMAP reader gives up on a server that accepts and never
greets, and tries again; folder names in modified UTF-7; the reply address found in a mailbox's
copy; `kehoach inbound --help` and its refusals, through Click's runner."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import threading
import time

from typer.testing import CliRunner

from approvals.config import get_settings
from service.cli import app
from service.inbound import reply_recipient
from service.inbound.imap import ImapConfig, ImapReader
from service.inbound.imap_client import decode_folder, encode_folder
from service.inbound.lmtp import LmtpServer
from tests.service.test_inbound_imap import DOMAIN, TOKEN, Recorder, reply, until

OURS = f"duyet+{TOKEN}@{DOMAIN}"
OTHER_TOKEN = "a" * 32


def lmtp_session(port: int, recipients: list[str], raw: bytes) -> dict[str, tuple[int, bytes]]:
    """Each recipient's answer: at RCPT when refused there, else after DATA (RFC 2033).

    smtplib.LMTP from the standard library, as the relay's stand-in: the product sends with
    aiosmtplib only, which has no LMTP client; a test client is not the product's sending code."""
    client = smtplib.LMTP("127.0.0.1", port)
    try:
        client.ehlo("relay.test")  # LMTP's LHLO: smtplib.LMTP sends it for ehlo
        client.mail("giamdoc@sokhcn.langson.gov.vn")
        answers, accepted = {}, []
        for recipient in recipients:
            code, text = client.rcpt(recipient)
            if code == 250:
                accepted.append(recipient)
            else:
                answers[recipient] = (code, text)
        client.putcmd("data")
        if client.getreply()[0] == 354:
            client.send(raw.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
            for recipient in accepted:  # one answer per accepted recipient, in their order
                answers[recipient] = client.getreply()
        return answers
    finally:
        client.close()


async def test_lmtp_answers_each_recipient_once_it_was_handled():
    handler = Recorder()
    server = LmtpServer(handler, port=0, local_part="duyet", domain=DOMAIN)
    await server.start()
    try:
        message_id, raw = reply(1)
        shouting = f"Duyet+{TOKEN.upper()}@{DOMAIN.upper()}"  # a relay may change a local part's case
        answers = await asyncio.to_thread(lmtp_session, server.port, [OURS, "someone@lang-son.example", shouting], raw)
    finally:
        await server.stop()
    assert answers[OURS][0] == 250 and answers[shouting][0] == 250
    assert answers["someone@lang-son.example"][0] == 550
    assert handler.calls == [(message_id, OURS), (message_id, shouting)]


async def test_lmtp_answers_451_for_a_recipient_whose_handler_raised():
    handler = Recorder()
    handler.fail = 1
    server = LmtpServer(handler, port=0, local_part="duyet", domain=DOMAIN)
    await server.start()
    try:
        other = f"duyet+{OTHER_TOKEN}@{DOMAIN}"
        _, raw = reply(1)
        answers = await asyncio.to_thread(lmtp_session, server.port, [OURS, other], raw)
    finally:
        await server.stop()
    assert answers[OURS][0] == 451  # the relay keeps it and tries again: nothing acknowledged
    assert answers[other][0] == 250
    assert server.stats == {"handled": 1, "failed": 1}


async def test_lmtp_refuses_a_message_over_the_size_limit():
    handler = Recorder()
    server = LmtpServer(handler, port=0, local_part="duyet", domain=DOMAIN, max_bytes=2000)
    await server.start()
    try:
        _, raw = reply(1)
        answers = await asyncio.to_thread(lmtp_session, server.port, [OURS], raw + (b"x" * 70 + b"\r\n") * 50)
    finally:
        await server.stop()
    assert answers[OURS][0] == 552
    assert handler.calls == []


class SilentServer:
    """Accepts connections and never says a word (a hung IMAP server); counts the connections."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self):
        self.sock.close()
        for connection in self.accepted:
            connection.close()


async def test_the_reader_gives_up_on_a_server_that_never_greets_and_tries_again():
    silent = SilentServer()
    reader = ImapReader(
        ImapConfig(
            host="127.0.0.1",
            port=silent.port,
            tls="none",
            user="duyet",
            password="x",
            timeout=0.3,
            backoff_base=0.05,
            backoff_max=0.1,
        ),
        Recorder(),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    try:
        await until(lambda: len(silent.accepted) >= 3, timeout=10, what="three connection attempts")
    finally:
        stop.set()
        started = time.monotonic()
        await asyncio.wait_for(task, 5)
        silent.close()
    assert time.monotonic() - started < 1.0  # stopping does not wait on the hung server
    assert reader.stats["connects"] == 0


def test_folder_names_in_modified_utf7():
    # RFC 3501 5.1.3's own example, and the name Dovecot lists for a folder made as "Đã xử lý & xong".
    assert encode_folder("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert encode_folder("Đã xử lý & xong") == "&ARAA4w- x&Hu0- l&AP0- &- xong"
    for name in ("Đã xử lý", "INBOX", "Thư trả lời & báo cáo", "~peter/mail/台北/日本語"):
        assert decode_folder(encode_folder(name)) == name


def test_the_reply_address_is_found_in_a_mailbox_copy():
    _, raw = reply(1)
    assert reply_recipient(raw, local_part="duyet", domain=DOMAIN) == OURS
    delivered = f"Delivered-To: duyet+{OTHER_TOKEN}@{DOMAIN}\r\n".encode() + raw
    assert reply_recipient(delivered, local_part="duyet", domain=DOMAIN) == f"duyet+{OTHER_TOKEN}@{DOMAIN}"
    assert reply_recipient(raw, local_part="duyet", domain="other.example") == ""


def _kehoach(*args: str, env: dict[str, str] | None = None):
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})
    finally:
        get_settings.cache_clear()


def test_inbound_help_says_what_it_does():
    result = _kehoach("inbound", "--help")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for expected in ("--imap", "--no-imap", "--lmtp", "--no-lmtp", "--check", "SIGTERM", "KEHOACH_REPLY_DOMAIN"):
        assert expected in text, expected
    assert "applied" in text and "several machines" in text
    assert "inbound" in _kehoach("--help").output


def test_inbound_refuses_to_start_with_nothing_to_receive(tmp_path):
    result = _kehoach("inbound", env={"KEHOACH_DATA_DIR": str(tmp_path), "KEHOACH_IMAP_HOST": ""})
    assert result.exit_code == 2 and "Nothing to receive" in result.output
    result = _kehoach("inbound", "--lmtp", env={"KEHOACH_DATA_DIR": str(tmp_path), "KEHOACH_REPLY_DOMAIN": ""})
    assert result.exit_code == 2 and "replies are off" in result.output


async def test_a_mailbox_unreachable_for_a_while_is_told_once_per_outage():
    """The coordinators' alert is asked for once however long the outage lasts (the reader keeps
    trying), naming the mailbox and why."""
    silent = SilentServer()
    told: list[str] = []

    async def outage(why: str) -> None:
        told.append(why)

    reader = ImapReader(
        ImapConfig(
            host="127.0.0.1",
            port=silent.port,
            tls="none",
            user="duyet",
            password="x",
            timeout=0.2,
            backoff_base=0.05,
            backoff_max=0.1,
            alert_after=0.5,
        ),
        Recorder(),
        outage,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    try:
        await until(lambda: told, timeout=10, what="the outage told")
        attempts = len(silent.accepted)
        await until(lambda: len(silent.accepted) >= attempts + 3, timeout=10, what="three more attempts")
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        silent.close()
    assert len(told) == 1 and f"127.0.0.1:{silent.port}" in told[0], told
