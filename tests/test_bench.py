"""The benchmarks still run: every row, every message accepted once (bench/mail.py checks
that itself and exits non-zero otherwise). Nothing here looks at a time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import postgres_base_url

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("naive:", "pooled:", "dispatcher, sending only", "producer in its own process",
        "one process, 10 per transaction")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_mail_bench_runs_every_row_on_a_small_outbox(backend):
    command = [sys.executable, str(ROOT / "bench" / "mail.py"), "--messages", "40", "--rounds", "2",
               "--per-transaction", "10"]
    if backend == "postgresql":
        url = postgres_base_url()
        if url is None:
            pytest.skip("KEHOACH_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped (CI sets it)")
        command += ["--postgres", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "round 2:" in done.stdout
    table = done.stdout.split("median of 2 round(s)")[1]
    for row in ROWS:
        assert row in table, done.stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_web_bench_runs_every_row(backend):
    """bench/web.py exits non-zero on any answer other than 200 with the expected page, or
    unless every link's decision was recorded exactly once."""
    command = [sys.executable, str(ROOT / "bench" / "web.py"), "--requests", "40", "--decisions", "10",
               "--rounds", "1", "--concurrency", "4"]
    if backend == "postgresql":
        url = postgres_base_url()
        if url is None:
            pytest.skip("KEHOACH_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped (CI sets it)")
        command += ["--postgres", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    for row in ("minimal FastAPI endpoint, GET", "kehoach approval page", "kehoach decision"):
        assert row in done.stdout, done.stdout
    assert "recorded exactly once" in done.stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_flows_bench_runs_on_a_real_prefect_server(backend):
    """bench/flows.py exits non-zero unless every kehoach step opened one request with two
    approvers, on a Prefect server of its own."""
    command = [sys.executable, str(ROOT / "bench" / "flows.py"), "--steps", "3", "--rounds", "1"]
    if backend == "postgresql":
        url = postgres_base_url()
        if url is None:
            pytest.skip("KEHOACH_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped (CI sets it)")
        command += ["--postgres", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bare Prefect: a task that does nothing" in done.stdout
    assert "every kehoach step opened one request with two approvers" in done.stdout
