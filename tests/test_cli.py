"""The `kehoach` command as ops run it: schema upgrade and the audit chain check."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from approvals.config import PACKAGED_PLAN
from approvals.db import Database
from approvals.plan import load_plan
from approvals.routing import steps
from tests.conftest import BACKENDS, DatabaseSandbox

pytestmark = pytest.mark.processes  # the installed `kehoach` script

KEHOACH = str(Path(sys.executable).parent / "kehoach")


def run(*args: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KEHOACH_DATABASE_URL": url}
    return subprocess.run([KEHOACH, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(params=BACKENDS)
def own_database(request, tmp_path):
    box = DatabaseSandbox(request.param, tmp_path)
    yield box
    box.drop()


async def _fill(url: str) -> None:
    plan = load_plan(PACKAGED_PLAN)
    db = Database(url)
    try:
        for year in ("2040", "2041", "2042"):
            async with db.transaction() as session:
                cycle = await steps.get_or_create_cycle(
                    session, kind="annual", period=year, starts_on=dt.date(2026, 1, 15)
                )
                await steps.open_request(
                    session,
                    plan=plan,
                    secret=b"k" * 32,
                    cycle=cycle,
                    stage_id="dic_direction",
                    waiter_ref=None,
                    link_ttl=dt.timedelta(days=30),
                    now=dt.datetime.now(dt.UTC),
                )
    finally:
        await db.dispose()


def test_db_upgrade_is_idempotent(own_database):
    result = run("db", "upgrade", url=own_database.url)
    assert result.returncode == 0, result.stderr
    assert "Database at revision" in result.stdout


def test_audit_verify_passes_then_names_the_first_edited_or_deleted_row(own_database):
    asyncio.run(_fill(own_database.url))
    ok = run("audit", "verify", url=own_database.url)
    assert ok.returncode == 0, ok.stderr
    assert "audit log OK: 3 rows verified" in ok.stdout

    with own_database.engine.begin() as conn:
        ids = [row[0] for row in conn.execute(text("SELECT id FROM audit_event ORDER BY id"))]
        conn.execute(text("UPDATE audit_event SET actor = 'someone else' WHERE id = :id"), {"id": ids[1]})
    edited = run("audit", "verify", url=own_database.url)
    assert edited.returncode == 1
    assert f"BROKEN at row {ids[1]}" in edited.stderr and "edited" in edited.stderr

    with own_database.engine.begin() as conn:
        conn.execute(text("UPDATE audit_event SET actor = 'system' WHERE id = :id"), {"id": ids[1]})
        conn.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": ids[1]})
    deleted = run("audit", "verify", url=own_database.url)
    assert deleted.returncode == 1
    assert f"BROKEN at row {ids[2]}" in deleted.stderr and "deleted" in deleted.stderr


def test_production_refuses_a_missing_link_secret(tmp_path):
    env = {**os.environ, "KEHOACH_ENVIRONMENT": "production", "KEHOACH_DATA_DIR": str(tmp_path)}
    env.pop("KEHOACH_LINK_SECRET", None)
    result = subprocess.run([KEHOACH, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "KEHOACH_LINK_SECRET" in result.stderr


def test_start_refuses_a_month_that_is_not_one_before_asking_prefect(tmp_path):
    env = {
        **os.environ,
        "KEHOACH_DATA_DIR": str(tmp_path),
        "NO_COLOR": "1",
        "COLUMNS": "120",
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
    }  # nothing listens there: it must not be asked
    result = subprocess.run(
        [KEHOACH, "start", "--month", "2027-13"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "month '2027-13' must be YYYY-MM" in result.stderr


def test_start_without_a_prefect_api_says_so_and_starts_no_server_of_its_own(tmp_path):
    """Without PREFECT_API_URL the Prefect client would start a temporary server in the
    process and wait there for deployments that cannot appear: `kehoach start` refuses at once."""
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env.update(KEHOACH_DATA_DIR=str(tmp_path), NO_COLOR="1", PREFECT_HOME=str(tmp_path / "prefect"))
    result = subprocess.run([KEHOACH, "start", "--year", "2031"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "PREFECT_API_URL is not set" in result.stderr
    assert "temporary server" not in result.stdout + result.stderr
