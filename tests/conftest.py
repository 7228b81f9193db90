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


# The fixtures that start processes: a test that asks for one is outside the fast tier.
PROCESS_FIXTURES = frozenset(
    {"prefect_template", "prefect_server", "stack", "stacks", "cluster", "live_api", "private_postgres"}
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


# The tests that take longest, in seconds beside two other workers (tests/README.md, "Every
# test over 20 s"): a hint for sharing them out, not a measurement. A test that starts processes
# and is not named here counts DEFAULT_SECONDS; a test that starts none, nothing.
EXPECTED_SECONDS = {
    "tests/test_rehearse.py::": 230,  # a rehearsed year: mostly waiting on its clock, dealt first
    "tests/faults/test_faults.py::": 150,
    "tests/test_e2e_restart.py::test_a_run_killed_mid_stage": 100,
    "tests/test_bench.py::test_scale_bench": 108,
    "tests/test_e2e_send_back.py::": 66,
    "tests/approvals/test_concurrency.py::test_fifty_parallel_decisions": 60,
    "tests/test_e2e_chain.py::test_the_annual_chain": 50,
    "tests/api/test_schemathesis.py::": 45,
    "tests/test_e2e_one_run.py::": 30,
    "tests/test_e2e_chain.py::test_a_cancelled_cycle": 28,
    "tests/service/test_scanners.py::": 28,
    "tests/test_demo.py::": 28,
    "tests/test_e2e_approval.py::": 25,
    "tests/test_e2e_restart.py::": 21,
    "tests/test_e2e_cadences.py::": 20,
}
DEFAULT_SECONDS = 4


def expected_seconds(item) -> float:
    if item.get_closest_marker("processes") is None:
        return 0
    return next((s for prefix, s in EXPECTED_SECONDS.items() if item.nodeid.startswith(prefix)), DEFAULT_SECONDS)


def dealt(items: list, workers: int) -> tuple[list, list[int]]:
    """The order for `workers` workers of pytest-xdist's worksteal, which hands each worker a
    contiguous share of the order (as many tests each) and lets a worker that runs out take the
    far end of another's queue. Each share begins with its part of the tests that start
    processes, dealt longest first to the share with the least expected time, so that no worker
    is left with every long test to run one after another at the end; the rest of a share is
    in-process tests, in their order. A long test is dealt alone; the other tests of a module
    that starts processes stay together (they share its module-scoped processes). Also the
    index where each share begins."""
    units: dict[str, list] = {}
    for item in items:
        if expected_seconds(item) > 0:
            alone = any(item.nodeid.startswith(prefix) for prefix in EXPECTED_SECONDS)
            units.setdefault(item.nodeid if alone else _module(item), []).append(item)
    light = [i for i in items if expected_seconds(i) == 0]
    sizes, left = [], len(items)
    for k in range(workers):  # as worksteal cuts the order
        sizes.append(left // (workers - k))
        left -= sizes[-1]
    shares: list[list] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for unit in sorted(units.values(), key=lambda u: sum(map(expected_seconds, u)), reverse=True):
        room = [k for k in range(workers) if len(shares[k]) + len(unit) <= sizes[k]] or list(range(workers))
        k = min(room, key=lambda k: load[k])
        shares[k] += unit
        load[k] += sum(map(expected_seconds, unit))
    order, starts = [], []
    for k in range(workers):  # the longest tests of a share first
        shares[k].sort(key=expected_seconds, reverse=True)  # stable: a module's tests stay together
        starts.append(len(order))
        fill = max(0, sizes[k] - len(shares[k]))
        order += shares[k] + light[:fill]
        light = light[fill:]
    order += light
    return order, starts


def _module(item) -> str:
    return item.nodeid.split("::")[0]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """A `postgres_only` test is not collected for SQLite at all (it is neither run nor skipped
    there); for PostgreSQL it runs, or fails, like any other.

    A test that starts processes is marked `processes`: one of the process fixtures, an `e2e`
    module, or its module's own mark. `--fast` leaves those out."""
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
        dropped += [item for item in items if item.get_closest_marker("processes") and item not in dropped]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        gone = {id(item) for item in dropped}
        items[:] = [item for item in items if id(item) not in gone]


def _stack_backend(item) -> str | None:
    """The backend whose stack (and the session's Prefect server) the test runs on, if any."""
    if "stack" not in item.fixturenames:
        return None
    return getattr(item, "callspec", None) and item.callspec.params.get("sandbox")


class Order:
    """The run's order (`dealt`: a share per worker of pytest-xdist, each beginning with its part
    of the tests that start processes), and what it lets go.

    A worker's stacks and the session's Prefect server idle at about 40 % of a core between them
    once no test needs them: when the next test a worker runs comes after the last one in its
    share that needs a backend's stack (or the Prefect server), the worker stops it. A test
    taken from another worker may need it again: a stack is then started again when asked for
    (`Stacks`), and the Prefect server before the test is set up (warm: its database kept)."""

    def __init__(self, config):
        self.config = config
        self.last_use: dict[tuple[int, str], int] = {}  # (share, what) -> the last index needing it
        self.index: dict[str, int] = {}
        self.share_of: dict[str, int] = {}

    @pytest.hookimpl(trylast=True)  # after pytest's own ordering, which keeps a module's tests of one backend together
    def pytest_collection_modifyitems(self, items):
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        items[:], starts = dealt(items, workers)
        self.index = {item.nodeid: n for n, item in enumerate(items)}
        self.share_of = {
            item.nodeid: max(k for k, start in enumerate(starts) if start <= n) for n, item in enumerate(items)
        }
        for n, item in enumerate(items):
            share = self.share_of[item.nodeid]
            backend = _stack_backend(item)
            if backend:
                self.last_use[(share, f"stack-{backend}")] = n
            if "prefect_server" in item.fixturenames:
                self.last_use[(share, "prefect")] = n

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        prefect = self.config.stash.get(SESSION_PREFECT, None)
        if prefect is not None and prefect.process is None and "prefect_server" in item.fixturenames:
            prefect.start(timeout=240)

    def pytest_runtest_teardown(self, item, nextitem):
        """What the rest of the share the next test belongs to no longer needs is stopped."""
        following = self.index[nextitem.nodeid] if nextitem is not None else len(self.index)
        share = self.share_of[nextitem.nodeid] if nextitem is not None else -1
        stacks = self.config.stash.get(RUNNING_STACKS, None)
        for backend in ("sqlite", "postgresql"):
            if stacks is not None and following > self.last_use.get((share, f"stack-{backend}"), -1):
                stacks.retire(backend)
        prefect = self.config.stash.get(SESSION_PREFECT, None)
        if (
            prefect is not None
            and following > self.last_use.get((share, "prefect"), -1)
            and not (stacks and stacks.running)
        ):
            prefect.stop()


RUNNING_STACKS = pytest.StashKey["Stacks"]()
SESSION_PREFECT = pytest.StashKey["LocalPrefectServer"]()


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
