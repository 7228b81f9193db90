"""The `kehoach` command as ops run it, the installed script: schema upgrade, and what it refuses
before it starts (the audit chain check and accounts run in process: tests/service/test_ops_in_process.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_db_upgrade_is_idempotent(own_database):
    result = run("db", "upgrade", url=own_database.url)
    assert result.returncode == 0, result.stderr
    assert "Database at revision" in result.stdout


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
