"""The whole stack on one machine, as `kehoach demo` and `kehoach rehearse` run it: a Prefect
server (reused when one is configured and healthy), the worker, and in this process the mail
catcher, the dispatcher and the web service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import typer
import uvicorn
from prefect.settings import PREFECT_API_URL, temporary_settings

from approvals.config import Settings
from approvals.db import Database
from notifications.catcher import MailCatcher
from service.app import create_app
from service.local_mailbox import catcher_mailbox
from service.migrate import upgrade
from service.prefect_server import LocalPrefectServer, healthy, prefect_env, stop_process
from service.wiring import make_channel_dispatcher, make_dispatcher


def step(message: str) -> None:
    typer.secho(f"==> {message}", fg=typer.colors.CYAN, err=True)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def prepare(settings: Settings, command: str) -> None:
    """The ports are free and the database is migrated; else a clear message and exit 1."""
    check_ports(settings, command)
    migrate(settings)


def check_ports(settings: Settings, command: str) -> None:
    for port, what in (
        (settings.smtp_port, "the mail catcher (KEHOACH_SMTP_PORT)"),
        (settings.web_port, "the web service (KEHOACH_WEB_PORT)"),
    ):
        if not port_free(port):
            typer.secho(
                f"Port {port} for {what} is already in use: is another kehoach {command} running?",
                fg=typer.colors.RED,
                err=True,
            )
            raise typer.Exit(1)


def migrate(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    step(f"Database: {settings.effective_database_url} (running migrations)")
    upgrade(settings.effective_database_url)


@dataclass(frozen=True)
class PrefectSide:
    api_url: str
    ui_url: str


@contextlib.contextmanager
def prefect_and_worker(settings: Settings, worker_env: dict[str, str] | None = None) -> Iterator[PrefectSide]:
    """A Prefect server (the configured one if healthy, else one started in the data folder)
    and the worker serving the deployments; both stopped on leaving. The block runs with
    PREFECT_API_URL pointing at the server."""
    server = None
    api_url = os.environ.get("PREFECT_API_URL")
    if api_url and healthy(api_url):
        step(f"Prefect: reusing the server at {api_url}")
        ui_url = api_url.removesuffix("/api")
    else:
        server = LocalPrefectServer(settings.data_dir / "prefect", port=4200 if port_free(4200) else None)
        step(f"Prefect: starting a local server on {server.ui_url} (the first start takes about 30 s)")
        last = [0]

        def progress(elapsed: float) -> None:
            if int(elapsed) // 5 > last[0]:
                last[0] = int(elapsed) // 5
                typer.echo(f"    ... still starting ({elapsed:.0f} s)", err=True)

        server.start(progress=progress)
        api_url, ui_url = server.api_url, server.ui_url
    os.environ["PREFECT_API_URL"] = api_url  # for child processes

    worker = None
    try:
        step("Worker: serving the deployments (runs wait suspended, holding no process)")
        env = prefect_env(settings.data_dir / "prefect", api_url)
        env.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "2")
        env["KEHOACH_DATA_DIR"] = str(settings.data_dir.resolve())
        env.update(worker_env or {})
        worker = subprocess.Popen(
            [sys.executable, "-m", "flows"],
            env=env,
            start_new_session=True,
            stdout=open(settings.data_dir / "worker.log", "ab"),
            stderr=subprocess.STDOUT,
        )
        with temporary_settings(updates={PREFECT_API_URL: api_url}):  # prefect read its settings at import
            yield PrefectSide(api_url, ui_url)
    finally:
        step("Stopping")
        stop_process(worker)
        if server:
            server.stop()
        step("Stopped cleanly")


@dataclass(frozen=True)
class Serving:
    db: Database
    stop: asyncio.Event  # set by Ctrl-C or SIGTERM


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside this process's event loop: Ctrl-C and SIGTERM belong to the stack (`Serving.stop`),
    so the server installs no signal handlers of its own (uvicorn >= 0.29 does so in capture_signals)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Serving]:
    """The mail catcher (its Maildir also over IMAP, with Dovecot where it is installed), the
    dispatchers (email; Zalo and SMS) and the web service, in this process, until the block ends."""
    catcher = MailCatcher(
        settings.mail_dir, host=settings.smtp_host, port=settings.smtp_port, reply_domain=settings.reply_domain
    )
    step(f"Mail catcher: SMTP on {settings.smtp_host}:{settings.smtp_port}")
    catcher.start()
    imap, said = await asyncio.to_thread(catcher_mailbox, settings)
    step(f"Mail catcher: {said}")
    db = Database(settings.effective_database_url)
    dispatcher = make_dispatcher(settings, db)
    phones = make_channel_dispatcher(settings, db)
    web = EmbeddedServer(
        uvicorn.Config(create_app(settings), host=settings.web_host, port=settings.web_port, log_level="warning")
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = []
    try:
        tasks = [
            asyncio.create_task(web.serve()),
            asyncio.create_task(dispatcher.run_forever(interval=1.0, stop=stop)),
            asyncio.create_task(phones.run_forever(interval=1.0, stop=stop)),
        ]
        yield Serving(db, stop)
    finally:
        web.should_exit = True
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await phones.aclose()
        if imap is not None:
            await asyncio.to_thread(imap.stop)
            shutil.rmtree(imap.home, ignore_errors=True)
        catcher.stop()
        await db.dispose()
