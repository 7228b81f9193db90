"""The benchmarks still run, on both backends. Each checks its own results and exits non-zero
otherwise: every message accepted once (mail), every answer the expected page and every
decision recorded once (web), every step's request opened (flows), every request decided once
and every reply applied (replies). Nothing here looks at a time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import postgres_base_url

pytestmark = pytest.mark.processes  # each bench runs as its own process

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="module")
def template(prefect_template) -> tuple[str, str]:
    """Where a bench starts a Prefect server, it copies the run's migrated database."""
    return ("--prefect-template", str(prefect_template))


def run_bench(script: str, backend: str, *args: str) -> str:
    """The bench's output, after checking it exited 0."""
    command = [sys.executable, str(ROOT / "bench" / script), *args]
    if backend == "postgresql":
        url = postgres_base_url()
        if url is None:
            pytest.skip("KEHOACH_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped (CI sets it)")
        command += ["--postgres", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_mail_bench_runs_every_row_on_a_small_outbox(backend):
    output = run_bench("mail.py", backend, "--messages", "40", "--rounds", "2", "--per-transaction", "10")
    assert "round 2:" in output
    table = output.split("median of 2 round(s)")[1]
    for row in (
        "naive:",
        "pooled:",
        "dispatcher, sending only",
        "producer in its own process",
        "one process, 10 per transaction",
    ):
        assert row in table, output


@pytest.mark.parametrize("backend", BACKENDS)
def test_web_bench_runs_every_row(backend):
    output = run_bench(
        "web.py",
        backend,
        "--requests",
        "40",
        "--decisions",
        "10",
        "--rounds",
        "1",
        "--concurrency",
        "4",
        "--paced",
        "6",
        "--rate",
        "30",
    )
    for row in (
        "minimal FastAPI endpoint, GET",
        "kehoach approval page",
        "bare FastAPI + SQLAlchemy decision",
        "kehoach decision, POST",
        "bare decision, 30/s offered",
        "kehoach decision, 30/s offered",
    ):
        assert row in output, output
    assert "recorded exactly once" in output


@pytest.mark.parametrize("backend", BACKENDS)
def test_replies_bench_runs_every_row(backend):
    """bench/replies.py, small: decisions POSTed to `kehoach web`, replies handed to `kehoach inbound`
    over LMTP and through a Dovecot mailbox over IMAP (the row says it was skipped where Dovecot is
    not installed); it exits non-zero unless every request was decided once and every reply applied."""
    from tests.support.dovecot import Dovecot

    output = run_bench("replies.py", backend, "--requests", "20", "--rounds", "1")
    table = output.split("median of 1 round(s)")[1]
    for row in ("POST path: kehoach web", "reply path, LMTP: kehoach inbound --lmtp"):
        assert row in table, output
    assert "reply path, IMAP: kehoach inbound --imap" in table, output
    assert ("skipped: Dovecot is not installed" in table) is not Dovecot.available(), output
    requests = 60 if Dovecot.available() else 40  # 20 a row
    assert f"every request was decided exactly once ({requests} requests)" in output, output
    assert "every reply's inbound_reply row is applied" in output


@pytest.mark.parametrize("backend", BACKENDS)
def test_flows_bench_runs_on_a_real_prefect_server(backend, template):
    output = run_bench("flows.py", backend, "--steps", "3", "--rounds", "1", *template)
    assert "bare Prefect: a task that does nothing" in output
    assert "every kehoach step opened one request with two approvers" in output


@pytest.mark.parametrize("backend", BACKENDS)
def test_scale_bench_carries_a_synthetic_stage_and_the_baseline(backend, template):
    """A small run of bench/scale.py: the annual report with 12 branches, some sent back, next to
    3 bare-Prefect branches; it exits non-zero unless each unit was asked once, the stage done,
    the chain finished and no Message-ID repeated."""
    output = run_bench(
        "scale.py", backend, "--sizes", "12", "--baseline", "3", "--changes", "0.25", "--concurrency", "4", *template
    )
    assert "bare Prefect, 3" in output and "12 (12 branches)" in output
    assert "3 reports sent back and resubmitted" in output
