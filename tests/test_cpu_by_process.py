"""The suite's own measuring tool (tests/support/cpu_by_process.py): what it names each process
the full suite starts, and that it passes the measured command's exit status on."""

from __future__ import annotations

import sys

import pytest

from tests.support.cpu_by_process import kind, main

SEEN_IN_A_FULL_RUN = {
    "/tmp/x/.venv/bin/python3 -m prefect.engine": "flow runs (python -m prefect.engine)",
    "/tmp/x/.venv/bin/python -m prefect server start --host 127.0.0.1 --port 45495": "Prefect servers",
    "/tmp/x/.venv/bin/python3 /tmp/x/.venv/bin/kehoach web": "kehoach web",
    "/tmp/x/.venv/bin/python3 /tmp/x/.venv/bin/kehoach rehearse --minutes 3.5 --year 2027": "kehoach rehearse",
    "/tmp/x/.venv/bin/python3 -m flows": "kehoach worker's deployments (python -m flows)",
    "/tmp/x/.venv/bin/python /tmp/x/bench/scale.py --sizes 12 --baseline 3": "bench/scale.py",
    "/tmp/x/.venv/bin/python -u -c import sys;exec(eval(sys.stdin.readline()))": "pytest and its workers",
    "/usr/lib/chromium/chromium --type=renderer --headless": "Chromium",
    "postgres: 15/main: postgres test 127.0.0.1(40112) idle": (
        "PostgreSQL (the server's backends, initdb, private clusters)"
    ),
    "/usr/lib/postgresql/15/bin/initdb -D /tmp/pg -U postgres": (
        "PostgreSQL (the server's backends, initdb, private clusters)"
    ),
    "dovecot -F -c /tmp/dovecot/dovecot.conf": "Dovecot",
    "sh -c true": "other",
}


@pytest.mark.parametrize("command_line", SEEN_IN_A_FULL_RUN)
def test_each_process_of_the_suite_gets_its_kind(command_line):
    assert kind(command_line) == SEEN_IN_A_FULL_RUN[command_line]


@pytest.mark.processes
def test_the_command_runs_and_its_exit_status_and_table_come_back(capfd):
    status = main(["--interval", "0.1", "--", sys.executable, "-c", "print('ran'); raise SystemExit(3)"])
    assert status == 3
    out, table = capfd.readouterr()
    assert out == "ran\n"  # the command's own output passes through untouched; the table goes to stderr
    assert "| the whole machine |" in table and "| not seen (short-lived, or started before) |" in table


def test_a_missing_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--"])
    assert stopped.value.code == 2
    assert "give the command to measure after --" in capsys.readouterr().err
