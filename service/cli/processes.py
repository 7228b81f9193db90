"""The processes ops run: `kehoach web`, `dispatch`, `worker`, `mailcatcher`, and `demo` and
`rehearse` (all of them at once, on this machine)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from service.cli.common import load_settings


def web() -> None:
    """Serve the approval pages and overview (uvicorn) on KEHOACH_WEB_HOST:KEHOACH_WEB_PORT."""
    import uvicorn

    from service.app import create_app
    from service.security import install_log_redaction

    settings = load_settings()
    install_log_redaction()
    uvicorn.run(create_app(settings), host=settings.web_host, port=settings.web_port, proxy_headers=False)


def dispatch(
    once: bool = typer.Option(False, "--once", help="Send what is due now and exit."),
) -> None:
    """Send queued emails over SMTP, and Zalo and SMS messages through their providers, retrying
    temporary failures; runs until stopped."""
    import asyncio
    import logging

    from approvals.db import Database
    from service.wiring import make_channel_dispatcher, make_dispatcher

    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def main() -> None:
        db = Database(settings.effective_database_url)
        dispatcher = make_dispatcher(settings, db)
        phones = make_channel_dispatcher(settings, db)
        try:
            if once:
                typer.echo(f"sent or retried {await dispatcher.run_once()} message(s)")
                typer.echo(f"sent, retried or held {await phones.run_once()} Zalo or SMS message(s)")
            else:
                await asyncio.gather(
                    dispatcher.run_forever(interval=settings.dispatch_interval),
                    phones.run_forever(interval=settings.dispatch_interval),
                )
        finally:
            await phones.aclose()
            await db.dispose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def worker() -> None:
    """Serve the Prefect deployments (annual-cycle) so runs can start, suspend and resume. With a
    signing file, each of its keys is opened first: a wrong PIN or an expired certificate stops
    the worker at start (exit 2), not the day a report is issued."""
    from approvals.plan import load_plan
    from approvals.signing.signers import signing_problems
    from flows.serve import serve_all

    settings = load_settings()
    problems = signing_problems(settings, load_plan(settings.plan_file), open_keys=True)
    if problems:
        typer.echo("The report's signers cannot sign:\n  " + "\n  ".join(problems), err=True)
        raise typer.Exit(2)
    serve_all()


def mailcatcher() -> None:
    """Run the local mail catcher (SMTP on KEHOACH_SMTP_HOST:KEHOACH_SMTP_PORT) until Ctrl-C."""
    import time

    from notifications.catcher import MailCatcher

    settings = load_settings()
    catcher = MailCatcher(
        settings.mail_dir, host=settings.smtp_host, port=settings.smtp_port, reply_domain=settings.reply_domain
    )
    catcher.start()
    typer.echo(f"Catching mail on {settings.smtp_host}:{settings.smtp_port} into {settings.mail_dir}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        catcher.stop()


def demo(year: int = typer.Option(None, help="The cycle's year; default: this year.")) -> None:
    """Run everything locally: SQLite, a Prefect server, the worker, the web service, the dispatcher and a mail catcher; start this year's annual cycle; Ctrl-C stops it all."""  # noqa: E501 (typer keeps a paragraph's line breaks in --help)
    from service.demo import current_year, run_demo

    settings = load_settings()
    run_demo(settings, year or current_year(settings))


def rehearse(
    minutes: float = typer.Option(30.0, help="Wall-clock minutes a planned year lasts (1 to 525600)."),
    year: int = typer.Option(None, help="The rehearsed cycle's year; default: next year."),
    play: list[str] = typer.Option(
        None,
        "--play",
        metavar="OFFICIAL_OR_ROLE",
        help="A role you play yourself (e.g. lead_agency.director) or an official's id (e.g. dost_director); "
        "repeat for more. Their emails wait in the inbox for you; simulated officials play everyone else.",
    ),
    send_back: float = typer.Option(0.1, help="Share of decisions that ask for changes (0 to 1)."),
    silent: float = typer.Option(
        0.05, help="Share of reporting units (and the Board, asked for guidance) that never answer (0 to 1)."
    ),
    late: float = typer.Option(0.1, help="Share of officials who act only after the due time (0 to 1)."),
    seed: int = typer.Option(1, help="The same seed plays the same year."),
    data_dir: Path = typer.Option(
        Path("kehoach-rehearsal"), help="The rehearsal's own data folder (its database, mail and Prefect)."
    ),
    database_url: str = typer.Option(
        None, help="A database of the rehearsal's own; default: SQLite in its data folder (never KEHOACH_DATABASE_URL)."
    ),
    stop_at_end: bool = typer.Option(False, "--stop-at-end", help="Stop once the year's summary is printed."),
) -> None:
    """Rehearse a whole annual cycle of the plan on the real stack, its calendar compressed (a year in 30 minutes), with simulated officials acting from their emails; refused in production and against a database holding real cycles. Ends with the issued consolidated report and a summary of the year."""  # noqa: E501
    from approvals.clock.rehearsals import speed_for
    from approvals.config import Settings
    from approvals.errors import KehoachError
    from approvals.plan import load_plan
    from service.demo import current_year
    from service.rehearsal.command import Rehearsal, played_officials, run_rehearsal
    from service.rehearsal.officials import Shares

    load_settings()  # KEHOACH_* as every command reads them; a bad value exits 2
    try:
        settings = Settings(
            data_dir=data_dir.resolve(),
            database_url=database_url,  # None: SQLite in the data folder, never KEHOACH_DATABASE_URL
            # Simulated officials all open their links from this machine: one client to the
            # failed-link limit, which would slow them all down for a few stale links.
            link_failure_limit=1000,
        )
        shares = Shares(send_back=send_back, silent=silent, late=late)
        speed_for(minutes)
    except (ValueError, KehoachError) as exc:  # pydantic's ValidationError is a ValueError
        raise typer.BadParameter(str(exc)) from None
    plan = load_plan(settings.plan_file)
    chosen = year or (current_year(settings) + 1)
    rehearsal = Rehearsal(
        year=chosen,
        minutes=minutes,
        played=played_officials(plan, play or [], plan.cycle("annual").start_in(chosen)),
        shares=shares,
        seed=seed,
        stop_at_end=stop_at_end,
    )
    run_rehearsal(settings, rehearsal)
