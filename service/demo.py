"""`kehoach demo`: the whole stack on embedded defaults, in one process tree."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import socket
import subprocess
import sys

import typer
import uvicorn
from prefect.settings import PREFECT_API_URL, temporary_settings

from approvals.accounts import AccountRole, create_account
from approvals.config import Settings
from approvals.db import Database, utcnow
from approvals.migrate import upgrade
from notifications.catcher import MailCatcher
from service.app import create_app
from service.cycles import start_annual_cycle
from service.prefect_server import LocalPrefectServer, healthy, prefect_env, stop_process
from service.wiring import make_dispatcher


def step(message: str) -> None:
    typer.secho(f"==> {message}", fg=typer.colors.CYAN, err=True)


def run_demo(settings: Settings, year: int) -> None:
    for port, what in (
        (settings.smtp_port, "the mail catcher (KEHOACH_SMTP_PORT)"),
        (settings.web_port, "the web service (KEHOACH_WEB_PORT)"),
    ):
        if not _port_free(port):
            typer.secho(
                f"Port {port} for {what} is already in use: is another kehoach demo running?",
                fg=typer.colors.RED,
                err=True,
            )
            raise typer.Exit(1)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    step(f"Database: {settings.effective_database_url} (running migrations)")
    upgrade(settings.effective_database_url)

    server = None
    api_url = os.environ.get("PREFECT_API_URL")
    if api_url and healthy(api_url):
        step(f"Prefect: reusing the server at {api_url}")
        ui_url = api_url.removesuffix("/api")
    else:
        server = LocalPrefectServer(settings.data_dir / "prefect", port=4200 if _port_free(4200) else None)
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
        worker = subprocess.Popen(
            [sys.executable, "-m", "flows"],
            env=env,
            start_new_session=True,
            stdout=open(settings.data_dir / "worker.log", "ab"),
            stderr=subprocess.STDOUT,
        )
        with temporary_settings(updates={PREFECT_API_URL: api_url}):  # prefect read its settings at import
            asyncio.run(_serve(settings, year, ui_url))
    except KeyboardInterrupt:
        pass
    finally:
        step("Stopping")
        stop_process(worker)
        if server:
            server.stop()
        step("Stopped cleanly")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def _serve(settings: Settings, year: int, ui_url: str) -> None:
    catcher = MailCatcher(settings.mail_dir, host=settings.smtp_host, port=settings.smtp_port)
    step(f"Mail catcher: SMTP on {settings.smtp_host}:{settings.smtp_port}")
    catcher.start()
    db = Database(settings.effective_database_url)
    dispatcher = make_dispatcher(settings, db)
    web = uvicorn.Server(
        uvicorn.Config(create_app(settings), host=settings.web_host, port=settings.web_port, log_level="warning")
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    web.install_signal_handlers = lambda: None
    tasks = []
    try:
        tasks = [asyncio.create_task(web.serve()), asyncio.create_task(dispatcher.run_forever(interval=1.0, stop=stop))]
        token = await _coordinator_token(db)
        step(f"Starting the annual cycle {year}")
        shifted = await dates_ahead(db, settings, year)
        if shifted:
            step(
                f"Its dates had passed: every deadline moved {shifted} days, so that all lie ahead "
                "(`kehoach start` asks; the demo shifts)"
            )
        run = await start_annual_cycle(year, settings.prefect_deployment)
        base = settings.public_base_url
        typer.echo("")
        typer.secho("kehoach is running. Open:", bold=True)
        typer.echo(f"  Inbox (caught emails):  {base}/mail")
        typer.echo(f"  Coordinators' dashboard: {base}/  (sign in at {base}/login with the token below)")
        typer.echo(f"  Coordinator API token:  {token}")
        typer.echo(f"  API documentation:      {base}/docs")
        typer.echo(f"  Prefect UI (the run):   {ui_url}/runs/flow-run/{run.id}")
        typer.echo("Open the email in the inbox: the press officer's link opens the orientation form (stage 1);")
        typer.echo("once submitted, the director's email links to the page where they decide. Press Ctrl-C to stop.")
        await stop.wait()
    finally:
        web.should_exit = True
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        catcher.stop()
        await db.dispose()


async def dates_ahead(db: Database, settings: Settings, year: int) -> int:
    """A newcomer's cycle has every deadline ahead of today, whatever the day: a year whose dates
    have passed is shifted (recorded in the audit log). The days shifted (0: none passed)."""
    from approvals.cycles import Schedule, calendar, schedule
    from approvals.plan import load_plan
    from flows.annual_cycle import CYCLE_KIND, cycle_start

    plan = load_plan(settings.plan_file)
    now = utcnow()
    starts_on = cycle_start(year)
    if not any(d.at <= now for d in calendar(plan, CYCLE_KIND, starts_on)):
        return 0
    async with db.transaction() as session:
        cycle, _ = await schedule(
            session,
            plan,
            kind=CYCLE_KIND,
            period=str(year),
            starts_on=starts_on,
            choice=Schedule.shift,
            by="demo",
            now=now,
        )
    return cycle.shift_days


async def _coordinator_token(db: Database) -> str:
    """A coordinator account for this demo run (tokens are shown once, so each run makes one)."""
    async with db.transaction() as session:
        name = f"demo-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
        _, token = await create_account(session, name=name, role=AccountRole.coordinator, by="demo", now=utcnow())
    return token


def current_year(settings: Settings) -> int:
    from approvals.plan import load_plan

    return dt.datetime.now(load_plan(settings.plan_file).tz).year
