"""The kehoach processes as ops would run them: `kehoach worker`, `kehoach web`, `kehoach dispatch`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from service.prefect_server import free_port, prefect_env, stop_process
from tests.support import local_http
from tests.support.fake_remote_signer import FakeRemoteSigner
from tests.support.remote_director import remote_signing_folder

KEHOACH = str(Path(sys.executable).parent / "kehoach")

# The Prefect server's background services that no test relies on, off in the servers the tests
# start (not in the benches, which measure Prefect as shipped). Their loops cost each idle server
# ~1.2 s of CPU a minute (3.0 with them, 1.8 without). Kept: the event persister (the events
# relay's tests read events back) and the task-run recorder (the UI's and the restart test's runs).
UNUSED_PREFECT_SERVICES_OFF = {
    f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false"
    for name in (
        "SCHEDULER",
        "LATE_RUNS",
        "FOREMAN",
        "CANCELLATION_CLEANUP",
        "PAUSE_EXPIRATIONS",
        "TRIGGERS",
        "REPOSSESSOR",
    )
}

REPLY_DOMAIN = "phanhoi.lang-son.example"
TRUSTED_MX = "mx.lang-son.example"  # whose Authentication-Results a reply's DKIM pass is read from


class Stack:
    def __init__(self, *, sandbox, prefect, smtp, link_secret: str, workdir: Path):
        self.sandbox = sandbox
        self.prefect = prefect
        self.smtp = smtp
        self.workdir = workdir
        self.web_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.env = prefect_env(prefect.home, prefect.api_url)
        self.env.update(
            {
                "KEHOACH_DATABASE_URL": sandbox.url,
                "KEHOACH_DATA_DIR": str(workdir),
                "KEHOACH_SMTP_HOST": "127.0.0.1",
                "KEHOACH_SMTP_PORT": str(smtp.port),
                "KEHOACH_WEB_PORT": str(self.web_port),
                "KEHOACH_PUBLIC_BASE_URL": self.base_url,
                "KEHOACH_LINK_SECRET": link_secret,
                # Emails that ask for a decision carry a reply address (tests/test_e2e_reply.py).
                "KEHOACH_REPLY_DOMAIN": REPLY_DOMAIN,
                "KEHOACH_REPLY_TRUSTED_AUTHSERV_IDS": TRUSTED_MX,
                "KEHOACH_DISPATCH_INTERVAL": "0.3",
                "KEHOACH_RESUME_RETRY_INTERVAL": "1",
                "PREFECT_RUNNER_POLL_FREQUENCY": "1",
                "KEHOACH_RUN_HEARTBEAT_SECONDS": "2",  # a run that dies is noticed within seconds
                "KEHOACH_SWEEP_CRON": "",  # the tests run the sweep when they mean to (its links rotate)
                "KEHOACH_RUN_SILENCE_SECONDS": "12",
                "KEHOACH_LINK_FAILURE_LIMIT": "200",  # tests send bad links on purpose; tests/service checks the limit
                "KEHOACH_MAX_BODY_BYTES": str(4 * 1024 * 1024),  # tests/service/test_limits.py streams past 4 MiB
            }
        )
        # The director signs the consolidated report on the phone, at a fake SmartCA-shaped
        # provider (`officials.consolidate` confirms), as a province using VNPT SmartCA would.
        self.phone = FakeRemoteSigner()
        self.phone.start()
        self.signing = remote_signing_folder(workdir / "signing", self.phone)
        self.env.update({"KEHOACH_SIGNING_FILE": str(self.signing.signing_file), **self.signing.environ})
        self.processes: dict[str, subprocess.Popen] = {}

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.workdir / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            [KEHOACH, *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.workdir,
        )

    def start(self) -> None:
        self._spawn("worker", "worker")
        self._spawn("web", "web")
        self._spawn("dispatch", "dispatch")
        deadline = time.monotonic() + 60
        while not self._web_ok() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert self._web_ok(), f"web service did not start; see {self.workdir / 'web.log'}"
        with temporary_settings(updates={PREFECT_API_URL: self.prefect.api_url}):
            from service.cycles import wait_for_deployment

            asyncio.run(wait_for_deployment("annual-cycle/annual-cycle", timeout=90))

    def kill(self, name: str) -> list[int]:
        """SIGKILL a process and everything it started (a machine dying): the worker's flow-run
        processes too, which Prefect may start in sessions of their own. Returns the pids killed."""
        pids, queue = [], [self.processes[name].pid]
        while queue:
            pid = queue.pop()
            pids.append(pid)
            out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
            queue += [int(child) for child in out.split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.processes[name].wait(timeout=30)
        return pids

    def reading(self):
        """A connection for the test's own reads. On SQLite it begins deferred (as the service's
        pages do): it never queues for the write lock, nor starves behind a run that takes it
        transaction after transaction."""
        from approvals.db import READ_ONLY

        return self.sandbox.engine.connect().execution_options(**{READ_ONLY: True})

    @contextlib.contextmanager
    def hold_writes(self):
        """Hold the database's write lock (SQLite) or the requests table (PostgreSQL) while the body
        runs: whoever writes next waits, as a process does when its database is slow."""
        if self.sandbox.backend == "sqlite":
            import sqlite3

            path = self.sandbox.url.removeprefix("sqlite:///")
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            conn.execute("BEGIN IMMEDIATE")
        else:
            import psycopg

            from tests.conftest import pg_conninfo

            conn = psycopg.connect(pg_conninfo(self.sandbox.url))
            conn.execute("LOCK TABLE approval_request, cycle_stage IN SHARE ROW EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()
            conn.close()

    def flow_run_process(self, name: str = "worker") -> int | None:
        """The pid of the flow-run process a worker runs now (`python -m prefect.engine`), if any."""
        out = subprocess.run(
            ["ps", "-o", "pid=,args=", "--ppid", str(self.processes[name].pid)], capture_output=True, text=True
        ).stdout
        return next((int(line.split()[0]) for line in out.splitlines() if "prefect.engine" in line), None)

    def wait_until(self, condition, failure: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, failure
            time.sleep(0.3)

    def respawn(self, name: str) -> None:
        """Start a killed process again, as its supervisor would."""
        self._spawn(name, name)
        if name == "worker":
            with temporary_settings(updates={PREFECT_API_URL: self.prefect.api_url}):
                from service.cycles import wait_for_deployment

                asyncio.run(wait_for_deployment("annual-cycle/annual-cycle", timeout=90))

    def kehoach(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a `kehoach` command as ops would, with the stack's settings."""
        return subprocess.run(
            [KEHOACH, *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.workdir
        )

    def _web_ok(self) -> bool:
        try:
            return local_http.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        for process in self.processes.values():
            stop_process(process)
        self.phone.stop()

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    # Prefect helpers -------------------------------------------------------
    def _prefect(self, coro_factory):
        async def run():
            async with get_client() as client:
                return await coro_factory(client)

        with temporary_settings(updates={PREFECT_API_URL: self.prefect.api_url}):
            return asyncio.run(run())

    def year(self, n: int) -> int:
        """Years are unique per backend (0 <= n < 20): both share one Prefect server and one mail
        catcher, and a year's run is idempotent. (SQLite's year 23 was PostgreSQL's year 3: a
        test took the other backend's emailed link.)"""
        assert 0 <= n < 20, f"year({n}): the backends' years would meet"
        return 2030 + (0 if self.sandbox.backend == "sqlite" else 20) + n

    def past_year(self, n: int) -> int:
        """A year whose dates have all passed (1 <= n <= 12), unique per backend: its annual report
        opens at once (it opens on 1 October of its year), its steps are due after the plan's
        minimum notice, and it is routed to today's officials."""
        assert 1 <= n <= 12
        return 2000 + (0 if self.sandbox.backend == "sqlite" else 12) + n

    def start_cycle(self, year: int) -> uuid.UUID:
        from service.cycles import start_annual_cycle

        with temporary_settings(updates={PREFECT_API_URL: self.prefect.api_url}):
            run = asyncio.run(start_annual_cycle(year, "annual-cycle/annual-cycle", wait=30))
        return run.id

    def start_run(self, deployment: str, parameters: dict) -> uuid.UUID:
        from prefect.deployments.flow_runs import arun_deployment

        from service.cycles import wait_for_deployment

        async def start():
            await wait_for_deployment(deployment, 60)
            return await arun_deployment(deployment, parameters=parameters, timeout=0, as_subflow=False)

        with temporary_settings(updates={PREFECT_API_URL: self.prefect.api_url}):
            return asyncio.run(start()).id

    def api_token(self, role: str = "coordinator") -> str:
        """A new API account on the stack's database; its bearer token."""
        from approvals.db import Database, utcnow
        from approvals.people.accounts import AccountRole, create_account

        async def create() -> str:
            db = Database(self.sandbox.url)
            try:
                async with db.transaction() as session:
                    _, token = await create_account(
                        session, name=f"e2e-{uuid.uuid4().hex[:8]}", role=AccountRole(role), by="test", now=utcnow()
                    )
                return token
            finally:
                await db.dispose()

        return asyncio.run(create())

    def wait_for_stage_2(self, run_id: uuid.UUID, year: int) -> None:
        """The annual chain went on after stage 1: the Propaganda Board's head is requested to give
        guidance, and the run waits again (suspended, holding no process)."""
        self.smtp.wait_for(
            lambda r: (
                "truongban.tgdv@lang-son.example" in r.envelope_to
                and "Cần gửi nội dung" in r.subject
                and f"{year}" in r.subject
            )
        )
        self.wait_for_state(run_id, {"Suspended"})

    def run_state(self, run_id: uuid.UUID):
        return self._prefect(lambda client: client.read_flow_run(run_id)).state

    def wait_for_state(self, run_id: uuid.UUID, names: set[str], timeout: float = 90):
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.run_state(run_id)
            if state is not None and state.name in names:
                return state
            if state is not None and state.is_final() and state.name not in names:
                break
            time.sleep(0.5)
        raise AssertionError(
            f"run {run_id} is {state.name if state else None!r}, not in {names}; "
            f"worker log:\n{self.log('worker')[-3000:]}"
        )

    def stage_statuses(self, year: int, kind: str = "annual") -> dict[str, str]:
        from sqlalchemy import text

        with self.reading() as conn:
            return dict(
                conn.execute(
                    text(
                        "SELECT s.stage, s.status FROM cycle_stage s JOIN cycle c ON c.id = s.cycle_id "
                        "WHERE c.kind = :k AND c.period = :p"
                    ),
                    {"k": kind, "p": str(year)},
                ).all()
            )

    def wait_for_stages(self, year: int, expected: dict[str, str], timeout: float = 90) -> dict[str, str]:
        """Until the year's stages have these statuses (others may have any); all of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.stage_statuses(year)
            if all(found.get(stage) == status for stage, status in expected.items()):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"stages {found}, expected {expected}; worker log:\n{self.log('worker')[-3000:]}")
            time.sleep(0.3)

    def worker_children(self, settle: float = 15) -> list[str]:
        """Command lines of the worker's children (a flow run executes in a child process),
        once the process of a run that just suspended has had time to exit."""
        pid = self.processes["worker"].pid
        deadline = time.monotonic() + settle
        while True:
            out = subprocess.run(["ps", "-o", "args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
            children = [line for line in out.splitlines() if line.strip()]
            if not children or time.monotonic() > deadline:
                return children
            time.sleep(0.5)
