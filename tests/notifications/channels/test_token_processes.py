"""Two OS processes refresh the Zalo token at once (two dispatchers on two machines): the
single-use refresh token reaches Zalo once, and both end with the new access token. The first
refresh is held at the fake Zalo until the second process is seen waiting for the row's lock
(on PostgreSQL, in pg_stat_activity; SQLite's busy wait shows nowhere, so there only its start)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import pg_conninfo, postgres_base_url
from tests.support.fake_zns import SECRET_KEY

pytestmark = pytest.mark.processes  # two Python processes
ROOT = Path(__file__).resolve().parents[3]


def _waiting_on_a_lock() -> bool:
    with psycopg.connect(pg_conninfo(postgres_base_url())) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%zalo_token%'"
        ).fetchone()
    return bool(row and row[0])


def _until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{condition.__name__} did not come true within {timeout} s")
        time.sleep(0.05)


async def test_two_processes_refreshing_at_once_spend_the_token_once(zalo_app, sandbox):
    await zalo_app.authorise(expires_in=0)
    zalo_app.fake.hang()
    command = [
        sys.executable,
        "-m",
        "tests.notifications.channels.refresher",
        sandbox.url,
        zalo_app.app_id,
        SECRET_KEY,
        zalo_app.fake.base_url,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        zalo_app.fake.wait_for_requests(1, timeout=60)  # one process holds the lock, its refresh held at Zalo
        if sandbox.backend == "postgresql":
            _until(_waiting_on_a_lock)  # the other waits for the row
        zalo_app.fake.release()
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        zalo_app.fake.release()
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for (_, err), process in zip(outputs, processes, strict=True):
        assert process.returncode == 0, err
    tokens = [out.strip().removeprefix("token ") for out, _ in outputs]
    assert len(zalo_app.fake.refreshes()) == 1  # the single-use refresh token reached Zalo once
    assert tokens[0] == tokens[1] == (await zalo_app.row()).access_token != zalo_app.access_token
