"""Fixtures on real parts: SQLite files and a PostgreSQL schema per run, migrations,
an aiosmtpd server, one Prefect server per test run, and the kehoach processes."""

from __future__ import annotations

import os
import secrets
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from approvals.db import Database, make_engine
from approvals.migrate import upgrade
from tests.support.smtp import RecordingSmtpServer

POSTGRES_ENV = "KEHOACH_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgresql"]


def postgres_base_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def _schema_url(base: str, schema: str) -> str:
    url = make_url(base)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def _pg_conninfo(base: str) -> str:
    url = make_url(base).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class DatabaseSandbox:
    """A fresh, migrated database for one backend: a SQLite file, or a PostgreSQL schema."""

    def __init__(self, backend: str, tmp: Path):
        self.backend = backend
        self.schema = None
        if backend == "sqlite":
            self.url = f"sqlite:///{tmp / 'kehoach-test.db'}"
        else:
            base = postgres_base_url()
            if base is None:
                pytest.skip(f"{POSTGRES_ENV} is not set: PostgreSQL tests skipped (CI sets it)")
            self.schema = f"kh_test_{uuid.uuid4().hex[:12]}"
            # No skip past this point: with the URL set, a PostgreSQL failure fails the test.
            with psycopg.connect(_pg_conninfo(base), autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{self.schema}"')
            self.url = _schema_url(base, self.schema)
        upgrade(self.url)
        self.engine = make_engine(self.url)

    def drop(self) -> None:
        self.engine.dispose()
        if self.schema:
            with psycopg.connect(_pg_conninfo(postgres_base_url()), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{self.schema}" CASCADE')


def pytest_collection_modifyitems(config, items):
    """A `postgres_only` test is not collected for SQLite at all (it is neither run nor skipped
    there); for PostgreSQL it runs, or fails, like any other."""
    dropped = [item for item in items if item.get_closest_marker("postgres_only")
               and getattr(item, "callspec", None) and item.callspec.params.get("sandbox") == "sqlite"]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


@pytest.fixture(scope="session", params=BACKENDS)
def sandbox(request, tmp_path_factory) -> DatabaseSandbox:
    box = DatabaseSandbox(request.param, tmp_path_factory.mktemp(f"db-{request.param}"))
    yield box
    box.drop()


@pytest.fixture
async def database(sandbox) -> Database:
    db = Database(sandbox.url)
    yield db
    await db.dispose()


@pytest.fixture
async def private_database(sandbox, tmp_path) -> Database:
    """A database of the sandbox's backend for one test alone: for code that works on every row
    of a table (the sweep on every open request, the wake queue), which other tests' rows in
    the shared sandbox would change."""
    own = DatabaseSandbox(sandbox.backend, tmp_path)
    db = Database(own.url)
    yield db
    await db.dispose()
    own.drop()


@pytest.fixture(scope="session")
def smtp_server() -> RecordingSmtpServer:
    server = RecordingSmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def link_secret() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    from service.prefect_server import LocalPrefectServer

    server = LocalPrefectServer(tmp_path_factory.mktemp("prefect-home"))
    server.start(timeout=240)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(sandbox, prefect_server, smtp_server, link_secret, tmp_path_factory):
    """The running processes, on a database of their own (their dispatcher must not
    claim messages that other tests put in the shared sandbox's outbox)."""
    from tests.support.stack import Stack

    own = DatabaseSandbox(sandbox.backend, tmp_path_factory.mktemp(f"stack-db-{sandbox.backend}"))
    running = Stack(sandbox=own, prefect=prefect_server, smtp=smtp_server, link_secret=link_secret,
                    workdir=tmp_path_factory.mktemp(f"stack-{sandbox.backend}"))
    running.start()
    yield running
    running.stop()
    own.drop()
