"""A local Prefect server for the embedded mode and the tests: started as a
subprocess, or reused when one is already configured and healthy."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from approvals.errors import Unavailable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def prefect_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            "PREFECT_LOGGING_LEVEL": env.get("PREFECT_LOGGING_LEVEL", "WARNING"),
            "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
            "PREFECT_LOCAL_STORAGE_PATH": str(home / "storage"),
        }
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


DATABASE_FILE = "prefect.db"  # Prefect's SQLite database in PREFECT_HOME, unless a connection URL is set


def migrate_database(home: Path, timeout: float = 300) -> Path:
    """Prefect's SQLite database in `home`, migrated to the installed Prefect's head without
    starting a server (`prefect server database upgrade`): a template that new local servers
    copy instead of running every migration again (about 8 s of CPU each)."""
    home.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
        env=prefect_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise Unavailable(f"prefect server database upgrade exited with {done.returncode}: {done.stderr[-2000:]}")
    return home / DATABASE_FILE


class LocalPrefectServer:
    """`template`: a migrated database (`migrate_database`) copied into a home that has none, so
    the server starts without migrating; ignored for a server on another database."""

    def __init__(
        self,
        home: Path,
        port: int | None = None,
        log_file: Path | None = None,
        env: dict[str, str] | None = None,
        template: Path | None = None,
    ):
        self.home = home
        self.extra_env = env or {}  # e.g. PREFECT_API_DATABASE_CONNECTION_URL for a PostgreSQL-backed server
        self.template = template
        self.port = port or free_port()
        self.log_file = log_file or home / "prefect-server.log"
        self.process: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180, progress: Callable[[float], None] | None = None) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        own_database = "PREFECT_API_DATABASE_CONNECTION_URL" in self.extra_env
        if self.template is not None and not own_database and not (self.home / DATABASE_FILE).exists():
            shutil.copyfile(self.template, self.home / DATABASE_FILE)
        log = open(self.log_file, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env={**prefect_env(self.home), **self.extra_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise Unavailable(f"the Prefect server exited with {self.process.returncode}; see {self.log_file}")
            if healthy(self.api_url):
                return
            if progress:
                progress(time.monotonic() - started)
            time.sleep(0.5)
        self.stop()
        raise Unavailable(f"the Prefect server was not healthy after {timeout:.0f} s; see {self.log_file}")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


def stop_process(process: subprocess.Popen | None, timeout: float = 15) -> None:
    """SIGTERM the process group, then SIGKILL what is left."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
