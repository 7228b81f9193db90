"""Two of each kehoach process on one PostgreSQL server of the test's own, with a Prefect server
of its own: what ops run, and what the fault tests break (kill a process, stop or hang Prefect,
restart the database) without touching what other tests use."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy.engine import Engine

from approvals.db import make_engine
from service.migrate import upgrade
from service.prefect_server import LocalPrefectServer, free_port, stop_process
from tests.support import local_http
from tests.support.pg import PrivatePostgres
from tests.support.stack import KEHOACH, UNUSED_PREFECT_SERVICES_OFF, Stack

ROLES = ("web", "worker", "dispatch")


@dataclass
class Sandbox:
    """What Stack needs of a database: its URL and an engine for the test's own reads."""

    url: str
    engine: Engine
    backend: str = "postgresql"


class Cluster(Stack):
    """`web-a`, `web-b`, `worker-a`, `worker-b`, `dispatch-a`, `dispatch-b`. Links in emails point
    at web-a; `via(link, "b")` sends an official to web-b instead, as a proxy would."""

    def __init__(self, *, folder: Path, smtp, link_secret: str, prefect_template: Path | None = None):
        self.postgres = PrivatePostgres()
        self.postgres.create()
        upgrade(self.postgres.url)
        self.own_prefect = LocalPrefectServer(
            folder / "prefect", template=prefect_template, env=UNUSED_PREFECT_SERVICES_OFF
        )
        self.own_prefect.start(timeout=240)
        super().__init__(
            sandbox=Sandbox(self.postgres.url, make_engine(self.postgres.url)),
            prefect=self.own_prefect,
            smtp=smtp,
            link_secret=link_secret,
            workdir=folder,
        )
        self.ports = {"a": self.web_port, "b": free_port()}
        self.env.update(
            {
                "KEHOACH_DISPATCH_LEASE_SECONDS": "10",
                "KEHOACH_RESUME_TIMEOUT": "3",
                "KEHOACH_RUN_SILENCE_SECONDS": "12",
                "KEHOACH_RUN_HEARTBEAT_SECONDS": "2",
                "KEHOACH_EVENT_CYCLE_DEPLOYMENT": "",
                "KEHOACH_PROBLEM_CYCLE_DEPLOYMENT": "",
            }
        )

    def _spawn(self, name: str, *args: str) -> None:
        env = dict(self.env)
        role, _, copy = name.partition("-")
        if role == "web":
            env["KEHOACH_WEB_PORT"] = str(self.ports[copy])
        log = open(self.workdir / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            [KEHOACH, role], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.workdir
        )

    def start(self) -> None:
        for role in ROLES:
            for copy in "ab":
                self._spawn(f"{role}-{copy}")
        for copy in "ab":
            self.wait_for_web(copy)
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.prefect.api_url}):
            import asyncio

            from service.cycles import wait_for_deployment

            asyncio.run(wait_for_deployment("annual-cycle/annual-cycle", timeout=120))

    def wait_for_web(self, copy: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if local_http.get(f"http://127.0.0.1:{self.ports[copy]}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"web-{copy} did not start"
            time.sleep(0.2)

    def respawn(self, name: str) -> None:
        self._spawn(name)
        if name.startswith("web"):
            self.wait_for_web(name.split("-")[1])

    def via(self, link: str, copy: str) -> str:
        parts = urlsplit(link)
        return link.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{self.ports[copy]}", 1)

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def run_carrier(self) -> str | None:
        """The worker whose child runs a flow run now (its `prefect.engine` process), if any."""
        for name in ("worker-a", "worker-b"):
            pid = self.processes[name].pid
            out = subprocess.run(["ps", "-o", "args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
            if "prefect.engine" in out:
                return name
        return None

    # Prefect's server ------------------------------------------------------------------------

    def hang_prefect(self) -> None:
        os.killpg(self.own_prefect.process.pid, signal.SIGSTOP)

    def unhang_prefect(self) -> None:
        os.killpg(self.own_prefect.process.pid, signal.SIGCONT)

    def stop_prefect(self) -> None:
        stop_process(self.own_prefect.process)

    def start_prefect(self) -> None:
        """The same server again: same folder (its database), same port."""
        self.own_prefect.start(timeout=240)

    def stop(self) -> None:
        super().stop()
        if self.own_prefect.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.unhang_prefect()
        self.own_prefect.stop()
        self.sandbox.engine.dispose()
        self.postgres.destroy()
