"""`kehoach inbound --check`, the health check ops and compose run against the replies' role, in
process (the fast tier): ok when the LMTP server of a running `kehoach inbound --lmtp` greets;
exit 1, naming what failed, when nothing listens, when a server accepts and never greets, or
when the mailbox cannot be reached. The reader against a real mailbox is in
tests/service/test_inbound_imap.py (Dovecot)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time

from service.inbound.lmtp import LmtpServer
from service.prefect_server import free_port
from tests.service.test_inbound_imap import DOMAIN, Recorder
from tests.service.test_inbound_lmtp import SilentServer, _kehoach


@contextlib.contextmanager
def lmtp_server_running():
    """The LMTP part of `kehoach inbound --lmtp`, serving on its own event loop in a thread (the
    command under test runs its own loop in this one)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = LmtpServer(Recorder(), port=0, local_part="duyet", domain=DOMAIN)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _check(tmp_path, *args: str, **env: str):
    result = _kehoach(
        "inbound",
        "--check",
        *args,
        env={"KEHOACH_DATA_DIR": str(tmp_path), "KEHOACH_IMAP_TIMEOUT": "0.5", "KEHOACH_IMAP_HOST": "", **env},
    )
    return result.exit_code, " ".join(result.output.split())


def test_the_check_passes_when_the_lmtp_server_greets(tmp_path):
    with lmtp_server_running() as server:
        code, out = _check(tmp_path, "--lmtp", KEHOACH_LMTP_PORT=str(server.port))
    assert code == 0, out
    assert f"ok lmtp LMTP answers on 127.0.0.1:{server.port}" in out


def test_the_check_fails_and_says_why_when_nothing_answers_or_nothing_greets(tmp_path):
    nowhere = free_port()
    code, out = _check(tmp_path, "--lmtp", KEHOACH_LMTP_PORT=str(nowhere))
    assert code == 1 and f"!! lmtp nothing answers on 127.0.0.1:{nowhere}" in out, out

    silent = SilentServer()
    try:
        code, out = _check(tmp_path, "--lmtp", KEHOACH_LMTP_PORT=str(silent.port))
    finally:
        silent.close()
    assert code == 1 and f"!! lmtp 127.0.0.1:{silent.port} did not greet: TimeoutError" in out, out


def test_the_check_of_a_mailbox_that_never_greets_fails_and_names_it(tmp_path):
    silent = SilentServer()
    try:
        code, out = _check(
            tmp_path,
            "--imap",
            "--no-lmtp",
            KEHOACH_IMAP_HOST="127.0.0.1",
            KEHOACH_IMAP_PORT=str(silent.port),
            KEHOACH_IMAP_TLS="none",
            KEHOACH_IMAP_USER="duyet",
            KEHOACH_IMAP_PASSWORD="x",
        )
    finally:
        silent.close()
    assert code == 1, out
    assert out.startswith(f"!! imap 127.0.0.1:{silent.port}: the IMAP server did not answer in time"), out
    assert "ok lmtp" not in out  # only what was asked for is checked


def test_both_parts_are_checked_and_one_failing_fails_the_check(tmp_path):
    nowhere = free_port()
    with lmtp_server_running() as server:
        code, out = _check(
            tmp_path,
            "--imap",
            "--lmtp",
            KEHOACH_LMTP_PORT=str(server.port),
            KEHOACH_IMAP_HOST="127.0.0.1",
            KEHOACH_IMAP_PORT=str(nowhere),
            KEHOACH_IMAP_TLS="none",
        )
    assert code == 1, out
    assert f"!! imap cannot connect to 127.0.0.1:{nowhere}: ConnectionRefusedError" in out, out
    assert f"ok lmtp LMTP answers on 127.0.0.1:{server.port}" in out, out


def test_the_role_serves_lmtp_until_sigterm_and_then_says_it_stopped(tmp_path, sandbox):
    """`kehoach inbound --lmtp`, the replies' role itself, in this process: it says what it
    receives and from where, greets on its port, and stops cleanly on SIGTERM (as compose and
    systemd stop it)."""
    port = free_port()
    stopped: list[str] = []
    returned = threading.Event()

    def stop_once_it_greets() -> None:
        """SIGTERM once the role greets (its loop holds the signal then); never after the command
        has returned; and after a minute without a greeting too, so that a hung role fails the test."""
        deadline = time.monotonic() + 60
        while not returned.is_set():
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as lmtp:
                if lmtp.recv(100).startswith(b"220"):
                    stopped.append("after its greeting")
                    break
            if time.monotonic() > deadline:
                stopped.append("never greeted")
                break
            time.sleep(0.05)
        if stopped:
            os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_once_it_greets, daemon=True)
    stopper.start()
    result = _kehoach(
        "inbound",
        "--lmtp",
        "--no-imap",
        env={
            "KEHOACH_DATA_DIR": str(tmp_path),
            "KEHOACH_DATABASE_URL": sandbox.url,
            "KEHOACH_LMTP_PORT": str(port),
            "KEHOACH_REPLY_DOMAIN": DOMAIN,
        },
    )
    returned.set()
    stopper.join(10)
    out = " ".join(result.output.split())
    assert stopped == ["after its greeting"] and result.exit_code == 0, out
    assert f"from LMTP on 127.0.0.1:{port}" in out and f"@{DOMAIN}" in out and out.endswith("Stopped."), out
