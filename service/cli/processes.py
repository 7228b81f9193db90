"""The processes ops run: `kehoach web`, `dispatch`, `worker`, `mailcatcher`, and `demo`
(all of them at once, on this machine)."""

from __future__ import annotations

import contextlib

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
    """Send queued emails over SMTP, retrying temporary failures; runs until stopped."""
    import asyncio
    import logging

    from approvals.db import Database
    from service.wiring import make_dispatcher

    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def main() -> None:
        db = Database(settings.effective_database_url)
        dispatcher = make_dispatcher(settings, db)
        try:
            if once:
                typer.echo(f"sent or retried {await dispatcher.run_once()} message(s)")
            else:
                await dispatcher.run_forever(interval=settings.dispatch_interval)
        finally:
            await db.dispose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def worker() -> None:
    """Serve the Prefect deployments (annual-cycle) so runs can start, suspend and resume."""
    from flows.serve import serve_all

    serve_all()


def mailcatcher() -> None:
    """Run the local mail catcher (SMTP on KEHOACH_SMTP_HOST:KEHOACH_SMTP_PORT) until Ctrl-C."""
    import time

    from notifications.catcher import MailCatcher

    settings = load_settings()
    catcher = MailCatcher(settings.mail_dir, host=settings.smtp_host, port=settings.smtp_port)
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
