"""What the service's tests share: `kehoach` run in this process on a test's own database."""

from __future__ import annotations

import asyncio

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from approvals.config import get_settings
from approvals.db import Database
from service.cli import app
from service.prefect_server import free_port

NOWHERE = f"http://127.0.0.1:{free_port()}/api"  # nothing listens: Prefect is down


@pytest.fixture
def kehoach(private_database, tmp_path):
    """`kehoach ARGS...` in this process, on the test's own database; (exit code, output)."""
    base = {"KEHOACH_DATABASE_URL": private_database.url, "KEHOACH_DATA_DIR": str(tmp_path), "COLUMNS": "200"}

    def run(*args: str, prefect: str | None = NOWHERE, env: dict[str, str] | None = None) -> tuple[int, str]:
        get_settings.cache_clear()  # a process reads its settings once; each run here has its own
        try:
            with temporary_settings(updates={PREFECT_API_URL: prefect}):
                result = CliRunner().invoke(
                    app, list(args), env={**base, **(env or {}), "PREFECT_API_URL": prefect or ""}
                )
        finally:
            get_settings.cache_clear()
        return result.exit_code, result.output

    return run


def in_database(url: str, work):
    """`work(session)` in one transaction on the database at `url`, from a test outside any loop."""

    async def main():
        db = Database(url)
        try:
            async with db.transaction() as session:
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(main())
