"""Fixtures on real parts: SQLite files and a PostgreSQL schema per run, migrations,
an aiosmtpd server, one Prefect server per test run, and the kehoach processes."""

from __future__ import annotations

import fcntl
import os
import secrets
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from approvals.db import Database, make_engine
from service.migrate import upgrade
from tests.support.order import RUNNING_STACKS, SESSION_PREFECT, Order
from tests.support.smtp import RecordingSmtpServer

POSTGRES_ENV = "KEHOACH_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", "postgresql"]


def postgres_base_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def _schema_url(base: str, schema: str) -> str:
    url = make_url(base)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def pg_conninfo(base: str) -> str:
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
            with psycopg.connect(pg_conninfo(base), autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{self.schema}"')
            self.url = _schema_url(base, self.schema)
        upgrade(self.url)
        self.engine = make_engine(self.url)

    def drop(self) -> None:
        self.engine.dispose()
        if self.schema:
            with psycopg.connect(pg_conninfo(postgres_base_url()), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{self.schema}" CASCADE')


# The fixtures that start processes: a test that asks for one is outside the fast tier.
PROCESS_FIXTURES = frozenset(
    {
        "prefect_template",
        "prefect_server",
        "stack",
        "stacks",
        "cluster",
        "live_api",
        "private_postgres",
        "dovecot",
        "softhsm_token",
    }
)
# What starting a process raises as an audit event (asyncio's subprocesses and Playwright's
# driver go through subprocess.Popen).
PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.posix_spawn", "os.fork", "os.forkpty", "os.exec", "os.spawn", "os.system", "pty.spawn"}
)


def pytest_addoption(parser):
    parser.addoption(
        "--fast",
        action="store_true",
        help="the fast tier: only the tests that start no process (no Prefect server, no kehoach "
        "process, no browser, no initdb), on SQLite and PostgreSQL; a test that starts one "
        "anyway fails",
    )


def _refuse_processes(event: str, args) -> None:
    if event in PROCESS_EVENTS:
        raise RuntimeError(
            f"the fast tier starts no process, but this test did ({event} {args[:2]!r}): "
            "mark it `processes` or ask for one of the process fixtures"
        )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """A `postgres_only` test is not collected for SQLite at all (it is neither run nor skipped
    there); for PostgreSQL it runs, or fails, like any other.

    A test that starts processes is marked `processes`: one of the process fixtures, an `e2e`
    module, or its module's own mark. `--fast` leaves those out, and the `stress` tests (many
    trials of a race, thousands of rows), which the inner loop can wait for."""
    dropped = [
        item
        for item in items
        if item.get_closest_marker("postgres_only")
        and getattr(item, "callspec", None)
        and item.callspec.params.get("sandbox") == "sqlite"
    ]
    for item in items:
        if PROCESS_FIXTURES.intersection(item.fixturenames) or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.processes)
    if config.getoption("--fast"):
        slow = ("processes", "stress")
        dropped += [item for item in items if any(map(item.get_closest_marker, slow)) and item not in dropped]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = {id(item) for item in dropped}
        items[:] = [item for item in items if id(item) not in gone]


def pytest_configure(config):
    config.pluginmanager.register(Order(config), "kehoach-order")


def pytest_collection_finish(session):
    """In the fast tier, starting a process fails the test that does it (after collection, so
    that pytest-xdist's controller, which spawns its workers, is not concerned)."""
    if session.config.getoption("--fast"):
        sys.addaudithook(_refuse_processes)


class Sandboxes:
    """The session's sandbox of each backend, made when a test first asks for it. Both live until
    the session ends, so a worker of pytest-xdist can run either backend's tests in any order
    without tearing one down to set the other up."""

    def __init__(self, tmp_path_factory):
        self.tmp_path_factory = tmp_path_factory
        self.made: dict[str, DatabaseSandbox] = {}

    def __getitem__(self, backend: str) -> DatabaseSandbox:
        if backend not in self.made:
            self.made[backend] = DatabaseSandbox(backend, self.tmp_path_factory.mktemp(f"db-{backend}"))
        return self.made[backend]

    def drop(self) -> None:
        for box in self.made.values():
            box.drop()


@pytest.fixture(scope="session")
def sandboxes(tmp_path_factory) -> Sandboxes:
    made = Sandboxes(tmp_path_factory)
    yield made
    made.drop()


@pytest.fixture(scope="module", params=BACKENDS)
def sandbox(request, sandboxes) -> DatabaseSandbox:
    """The backend's shared sandbox: each test that asks for it runs on SQLite and on PostgreSQL."""
    return sandboxes[request.param]


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
def dovecot():
    """A real IMAP server (Debian's Dovecot) for the session; tests keep to folders of their own."""
    from tests.support.dovecot import Dovecot

    server = Dovecot()
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def link_secret() -> str:
    return secrets.token_urlsafe(48)


@pytest.fixture(scope="session")
def prefect_template(tmp_path_factory) -> Path:
    """Prefect's SQLite database migrated once per run (the xdist workers share it: the first
    makes it, the other waits on the lock); every Prefect server the tests start copies it."""
    from service.prefect_server import DATABASE_FILE, migrate_database

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    home = shared / "prefect-template"
    with open(shared / "prefect-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (home / "migrated").exists():
            migrate_database(home)
            (home / "migrated").touch()
    return home / DATABASE_FILE


@pytest.fixture(scope="session")
def prefect_server(request, tmp_path_factory, prefect_template):
    from service.prefect_server import LocalPrefectServer
    from tests.support.stack import UNUSED_PREFECT_SERVICES_OFF

    server = LocalPrefectServer(
        tmp_path_factory.mktemp("prefect-home"), template=prefect_template, env=UNUSED_PREFECT_SERVICES_OFF
    )
    server.start(timeout=240)
    request.config.stash[SESSION_PREFECT] = server
    yield server
    server.stop()


class Stacks:
    """The session's running processes of each backend, started when a test first asks for them.
    One stack uses the session's Prefect server; another, where both backends' run in one process
    at once, gets a server of its own: each `kehoach worker` serves the same deployment names,
    and on one server they would take each other's runs. `retire` stops one (`Order`)."""

    def __init__(self, *, sandboxes, prefect, smtp, link_secret, tmp_path_factory):
        self.sandboxes, self.prefect, self.smtp, self.link_secret = sandboxes, prefect, smtp, link_secret
        self.tmp_path_factory = tmp_path_factory
        self.running: dict = {}  # backend -> (Stack, its own Prefect server or None)

    def _own_server(self):
        """None where the session's server is free, else a server of its own, started."""
        if all(own is not None for _, own in self.running.values()):
            return None
        from service.prefect_server import LocalPrefectServer
        from tests.support.stack import UNUSED_PREFECT_SERVICES_OFF

        server = LocalPrefectServer(
            self.tmp_path_factory.mktemp("prefect-home-stack"),
            template=self.prefect.template,
            env=UNUSED_PREFECT_SERVICES_OFF,
        )
        server.start(timeout=240)
        return server

    def __getitem__(self, backend: str):
        from tests.support.stack import Stack

        if backend not in self.running:
            self.sandboxes[backend]  # skips here, as the sandbox does, where PostgreSQL is not configured
            own_server = self._own_server()
            # A database of their own: their dispatcher must not claim messages that other tests
            # put in the shared sandbox's outbox.
            own = DatabaseSandbox(backend, self.tmp_path_factory.mktemp(f"stack-db-{backend}"))
            running = Stack(
                sandbox=own,
                prefect=own_server or self.prefect,
                smtp=self.smtp,
                link_secret=self.link_secret,
                workdir=self.tmp_path_factory.mktemp(f"stack-{backend}"),
            )
            self.running[backend] = (running, own_server)
            running.start()
        return self.running[backend][0]

    def retire(self, backend: str) -> None:
        running, own_server = self.running.pop(backend, (None, None))
        if running is not None:
            running.stop()
            running.sandbox.drop()
        if own_server is not None:
            own_server.stop()

    def stop(self) -> None:
        for backend in list(self.running):
            self.retire(backend)


@pytest.fixture(scope="session")
def stacks(request, sandboxes, prefect_server, smtp_server, link_secret, tmp_path_factory) -> Stacks:
    made = Stacks(
        sandboxes=sandboxes,
        prefect=prefect_server,
        smtp=smtp_server,
        link_secret=link_secret,
        tmp_path_factory=tmp_path_factory,
    )
    request.config.stash[RUNNING_STACKS] = made
    yield made
    made.stop()


@pytest.fixture(scope="module")
def stack(sandbox, stacks):
    """`kehoach worker`, `web` and `dispatch` as ops run them, on the sandbox's backend."""
    return stacks[sandbox.backend]
