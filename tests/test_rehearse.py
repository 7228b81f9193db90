"""`kehoach rehearse` end to end (issue 22): the shipped plan's whole year at its real size (89
reporting units) on the real stack (a Prefect server, the worker, the sweep, the dispatcher,
the web service and the mail catcher), its calendar compressed into minutes, simulated
officials acting from their emails, until the consolidated report is issued and emailed.

The person plays the Propaganda Board's head: that email waits in the inbox, nobody answers
it, and the Board's guidance lapses as the plan allows."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pypdf
import pytest

from notifications.catcher import read_inbox
from service.prefect_server import LocalPrefectServer, free_port
from tests.support.stack import UNUSED_PREFECT_SERVICES_OFF

pytestmark = pytest.mark.e2e
KEHOACH = str(Path(sys.executable).parent / "kehoach")
# The planned year's wall minutes. In run 35 (tests/README.md) the director's 89 decisions, made
# page by page, fell behind a day that lasted half a second; the simulated officials now decide a
# stage's waiting steps from their queue, a few confirmations for the 89 reports.
MINUTES = 3.5
# Only a hang guard, not a time limit: under a loaded full run (three workers on two cores beside
# the e2e stacks), every flow-run process Prefect starts pays its imports many times slower.
HANG_GUARD_SECONDS = 1500
YEAR = 2027
UNITS = 89  # every unit that reports in 2027 (the departments, the press, the mass organisations, the 65 communes)
PREFIX = ("[Diễn tập]", "[Rehearsal]")


@pytest.fixture
def prefect(tmp_path, prefect_template):
    """A Prefect server of the rehearsal's own: its worker serves the same deployment names as
    the other tests' workers, and would take their runs on a shared server."""
    server = LocalPrefectServer(tmp_path / "prefect", template=prefect_template, env=UNUSED_PREFECT_SERVICES_OFF)
    server.start(timeout=240)
    yield server
    server.stop()


def test_a_rehearsed_year_runs_to_the_issued_report_with_simulated_officials(tmp_path, prefect):
    folder, web_port = tmp_path / "rehearsal", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "KEHOACH_"))}
    env.update(
        {
            "KEHOACH_WEB_PORT": str(web_port),
            "KEHOACH_SMTP_PORT": str(free_port()),
            "KEHOACH_MAIL_CATCHER_IMAP_PORT": "0",  # the catcher's IMAP: tests/service/test_local_mailbox.py
            "KEHOACH_PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
            "PREFECT_API_URL": prefect.api_url,
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        }
    )
    args = ["--minutes", str(MINUTES), "--year", str(YEAR), "--data-dir", str(folder), "--play", "propaganda_head"]
    code, out = _rehearse(args, env, tmp_path)
    assert code == 0, out[-4000:]
    issued = re.search(r"The consolidated report (\d+/BC[-A-Z]*) is issued\n.*It is emailed to the PPC", out)
    assert issued, out[-4000:]
    assert "You play: propaganda_head" in out and "Stopped cleanly" in out
    print(out[out.find("The rehearsed year") :][:1500])  # its summary, for whoever runs this with -s
    assert re.search(r"Simulated officials: .*queue confirmations \d+", out), out[-2000:]  # not page by page
    assert re.search(r"Audit log: +\d+ rows, the chain verifies", out), out[-2000:]

    db = sqlite3.connect(folder / "kehoach.db")
    (speed,) = db.execute("SELECT rehearsal_speed FROM cycle WHERE period = ?", (str(YEAR),)).fetchone()
    assert speed == pytest.approx(365 * 86_400 / (MINUTES * 60))
    assert db.execute("SELECT COUNT(*) FROM cycle WHERE rehearsal_speed IS NULL").fetchone() == (0,)
    stages = dict(db.execute("SELECT stage, status FROM cycle_stage"))
    assert stages["consolidated_report"] == "done" and stages["propaganda_guidance"] == "lapsed", stages
    units = db.execute("SELECT COUNT(DISTINCT subject) FROM approval_request WHERE stage = 'annual_report'").fetchone()
    assert units == (UNITS,)

    # Each month's culture-society cycle ran on the rehearsal's clock, its outlets acting too.
    months = dict(db.execute("SELECT period, rehearsal_speed FROM cycle WHERE kind = 'culture_society_monthly'"))
    assert sorted(months) == [f"{YEAR}-{m:02d}" for m in range(2, 13)] and set(months.values()) == {speed}
    monthly = db.execute(
        "SELECT COUNT(*) FROM decision d JOIN approval_request r ON r.id = d.request_id "
        "WHERE r.stage = 'monthly_production'"
    ).fetchone()[0]
    assert monthly > 0
    finished = db.execute(
        "SELECT COUNT(*) FROM cycle WHERE kind = 'culture_society_monthly' AND finished_at IS NOT NULL"
    ).fetchone()[0]
    assert f"Monthly cycles:        11 started, {finished} finished" in out

    # The economic event a coordinator recorded through the API got its coverage cycle on the same clock.
    events = db.execute("SELECT period, rehearsal_speed, starts_on FROM cycle WHERE kind = 'economy_event'").fetchall()
    assert [(speed_, starts) for _, speed_, starts in events] == [(speed, f"{YEAR}-06-20")], events
    covered = db.execute(
        "SELECT COUNT(*) FROM decision d JOIN approval_request r ON r.id = d.request_id "
        "WHERE r.stage = 'event_coverage'"
    ).fetchone()[0]
    assert covered > 0 and "recorded the economic event" in out

    # The summary says what the database holds of the annual cycle (the months have a line of their own).
    db.execute(
        "CREATE TEMP VIEW year_step AS SELECT * FROM approval_request "
        "WHERE cycle_id = (SELECT id FROM cycle WHERE kind = 'annual')"
    )
    steps, rounds = db.execute("SELECT COUNT(DISTINCT stage || '/' || subject), COUNT(*) FROM year_step").fetchone()
    assert f"Steps:                 {steps} ({rounds} rounds with resubmissions)" in out
    decisions = dict(
        db.execute("SELECT outcome, COUNT(*) FROM decision WHERE request_id IN (SELECT id FROM year_step) GROUP BY 1")
    )
    assert f"sent back {decisions.get('request_changes', 0)}" in out and decisions["approve"] > UNITS
    reminded = db.execute(
        "SELECT COUNT(*) FROM audit_event WHERE action IN ('request.reminded', 'submission.reminded') "
        "AND replace(entity_id, '-', '') IN (SELECT id FROM year_step)"  # SQLite keeps a uuid's 32 digits
    ).fetchone()[0]
    escalated = db.execute("SELECT COUNT(*) FROM year_step WHERE escalated_at IS NOT NULL").fetchone()[0]
    assert reminded > 0 and escalated > 0  # the sweep followed the compressed clock
    assert f"Reminders:             {reminded}" in out and f"Escalations:           {escalated}" in out

    # The person played the Board's head: nothing was done in their name; their email waits.
    assert db.execute("SELECT COUNT(*) FROM decision WHERE official_id = 'propaganda_head'").fetchone() == (0,)
    assert db.execute("SELECT requested_by FROM approval_request WHERE stage = 'propaganda_guidance'").fetchall() == [
        (None,)
    ]
    inbox = read_inbox(folder / "mail")
    waiting = [m for m in inbox if "truongban.tgdv@" in str(m.message["To"]) and "/s/" in m.text]
    assert waiting, "the Board head's form link never reached the inbox"

    # Every email names the rehearsal; the issued report reached the PPC, dated on the rehearsal's calendar.
    assert [m.message["Subject"] for m in inbox if not str(m.message["Subject"]).startswith(PREFIX)] == []
    report = [m for m in inbox if "vanthu.ubnd@" in str(m.message["To"]) and issued.group(1) in m.text]
    assert report, "the issued report was not emailed to the PPC"
    (pdf,) = [data for name, kind, data in report[0].attachments if kind == "application/pdf"]
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert "BẢN DIỄN TẬP - KHÔNG CÓ GIÁ TRỊ THỰC HIỆN" in " ".join(text.split())  # no one takes it for real
    # Dated on the rehearsal's calendar, as the register holds it: after the units' 30 November,
    # never today's date (how far past it depends on how fast this machine ran the year). The
    # register writes the date into the director's signed PDF, in its field.
    entries = " ".join(str(f.get("/V", "")) for f in (pypdf.PdfReader(io.BytesIO(pdf)).get_fields() or {}).values())
    dated = re.search(r"Lạng Sơn, ngày (\d{2}) tháng (\d{2}) năm (\d{4})", entries)
    (issued_on,) = db.execute("SELECT issued_on FROM issued_report").fetchone()
    assert dated and dt.date(*map(int, reversed(dated.groups()))) == dt.date.fromisoformat(issued_on), entries
    assert dt.date.fromisoformat(issued_on) >= dt.date(YEAR, 12, 1), issued_on

    verified = subprocess.run(
        [KEHOACH, "audit", "verify"],
        env={**env, "KEHOACH_DATA_DIR": str(folder)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # Signed by the rehearsal's director and agency with the test CA made in its folder, as
    # anyone checks it: `kehoach report verify` on the PDF the PPC received.
    (folder / "received.pdf").write_bytes(pdf)
    checked = subprocess.run(
        [KEHOACH, "report", "verify", str(folder / "received.pdf"), "--lang", "en"],
        env={**env, "KEHOACH_DATA_DIR": str(folder)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0 and checked.stdout.count("Verdict: valid") == 2, checked.stdout + checked.stderr
    assert "TEST CERTIFICATES" in checked.stdout

    # Run again on the same folder: it joins the finished rehearsal, and starts nothing twice.
    counts = (
        "SELECT (SELECT COUNT(*) FROM cycle), (SELECT COUNT(*) FROM outbox_message), (SELECT COUNT(*) FROM decision), "
        "(SELECT COUNT(*) FROM economic_event)"
    )
    before = db.execute(counts).fetchone()
    code, said = _rehearse(args, env, tmp_path)
    assert code == 0, said[-3000:]
    assert "is over, its report" in said and f"{issued.group(1)} is issued" in said, said[-3000:]
    assert db.execute(counts).fetchone() == before


def _rehearse(args: list[str], env: dict, cwd) -> tuple[int, str]:
    """`kehoach rehearse ARGS --stop-at-end`: its exit code and everything it printed (a hung
    rehearsal fails with the output it had printed, to say where it stopped)."""
    try:
        done = subprocess.run(
            [KEHOACH, "rehearse", *args, "--stop-at-end"],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=HANG_GUARD_SECONDS,
        )
    except subprocess.TimeoutExpired as hung:
        printed = (hung.stdout or b"") + (hung.stderr or b"")
        text = printed.decode(errors="replace") if isinstance(printed, bytes) else printed
        pytest.fail(f"the rehearsal still ran after {HANG_GUARD_SECONDS} s; it printed:\n{text[-4000:]}")
    return done.returncode, done.stdout + done.stderr
