"""`kehoach demo`, the README's first command, as a person runs it: start, read the
inbox, follow the link, decide, Ctrl-C."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.prefect_server import free_port
from tests.support import local_http

pytestmark = pytest.mark.e2e
KEHOACH = str(Path(sys.executable).parent / "kehoach")


def _link_in_inbox(base: str, port: int, kind: str) -> str:
    """The first /a/ (approval) or /s/ (submission) link the inbox page shows."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        inbox = local_http.get(f"{base}/mail")
        assert inbox.status_code == 200
        found = re.search(rf'href="(http://127\.0\.0\.1:{port}/{kind}/[A-Za-z0-9_-]+)"', inbox.text)
        if found:
            return found.group(1)
        time.sleep(1)
    raise AssertionError(f"no /{kind}/ link reached the inbox page")


def _wait_for_line(process: subprocess.Popen, pattern: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, log.read_text()):
            return
        if process.poll() is not None:
            break
        time.sleep(0.3)
    raise AssertionError(f"{pattern!r} not seen in {timeout:.0f} s; output:\n{log.read_text()}")


def test_demo_runs_the_annual_cycle_and_stops_cleanly_on_ctrl_c(tmp_path):
    web_port, smtp_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "KEHOACH_"))}
    env.update(
        {
            "KEHOACH_DATA_DIR": str(tmp_path / "data"),
            "KEHOACH_WEB_PORT": str(web_port),
            "KEHOACH_SMTP_PORT": str(smtp_port),
            "KEHOACH_MAIL_CATCHER_IMAP_PORT": str(free_port()),
            "KEHOACH_PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        }
    )
    log = tmp_path / "demo.log"
    demo = subprocess.Popen(
        [KEHOACH, "demo"],
        env=env,
        cwd=tmp_path,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_line(demo, r"Open the email in the inbox", log, timeout=240)
        base = f"http://127.0.0.1:{web_port}"
        output = log.read_text()
        assert "==> Prefect: starting a local server" in output  # progress while starting
        assert f"http://127.0.0.1:{web_port}/mail" in output
        # The catcher's own IMAP (tests/service/test_local_mailbox.py), or why not (as root, Dovecot
        # cannot reach pytest's folders).
        assert re.search(r"==> Mail catcher: (IMAP on 127\.0\.0\.1:\d+, user kehoach|no IMAP: )", output), output
        assert "/runs/flow-run/" in output
        # The demo signs its report with a test CA of its own, made at start, and says so.
        assert f"test certificates in {tmp_path / 'data' / 'test-signing'}" in output
        assert (tmp_path / "data" / "test-signing" / "test-ca.pem").is_file()

        # Stage 1: the press officer's form link, then the director's approval link.
        form = _link_in_inbox(base, web_port, "s")
        assert "Cần gửi nội dung" in local_http.get(f"{base}/mail").text
        sent = local_http.post(
            form,
            data={
                "text": "Định hướng năm",
                "field_themes": "Kinh tế xanh",
                "field_channels": "Báo, đài",
                "field_calendar": "Quý I–IV",
            },
        )
        assert sent.status_code == 200 and "Đã nộp" in sent.text
        link = _link_in_inbox(base, web_port, "a")
        assert "Cần phê duyệt" in local_http.get(f"{base}/mail").text

        # Whatever the day, a newcomer's cycle has every deadline ahead (a year already under way
        # is shifted, and that is said).
        with sqlite3.connect(tmp_path / "data" / "kehoach.db") as db:
            (shift,) = db.execute("SELECT shift_days FROM cycle WHERE kind = 'annual'").fetchone()
            dues = [dt.datetime.fromisoformat(d) for (d,) in db.execute("SELECT due_at FROM approval_request")]
        now = dt.datetime.now(dt.UTC)
        assert dues and all((d if d.tzinfo else d.replace(tzinfo=dt.UTC)) > now for d in dues)
        if shift:
            assert f"every deadline moved {shift} days" in output
        assert local_http.post(link, data={"outcome": "approve", "comment": ""}).status_code == 200
        token = re.search(r"Coordinator API token:\s+(\S+)", output).group(1)
        assert local_http.get(f"http://127.0.0.1:{web_port}/").status_code == 303  # the dashboard needs a login
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            overview = local_http.get(
                f"http://127.0.0.1:{web_port}/", headers={"Authorization": f"Bearer {token}"}
            ).text
            if "Đã phê duyệt" in overview:
                break
            time.sleep(1)
        assert "Đã phê duyệt" in overview
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            raise
    assert "Stopped cleanly" in log.read_text()
    assert demo.returncode == 0, log.read_text()
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], "demo left processes behind"
