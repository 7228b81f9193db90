"""`kehoach inbound`: the role that receives the officials' emailed replies."""

from __future__ import annotations

import typer

from service.cli.common import load_settings


def inbound(
    imap: bool = typer.Option(
        None,
        "--imap/--no-imap",
        help="Read the reply mailbox over IMAP (KEHOACH_IMAP_*); default: when KEHOACH_IMAP_HOST is set.",
    ),
    lmtp: bool = typer.Option(
        None,
        "--lmtp/--no-lmtp",
        help="Take replies from the local mail relay over LMTP on KEHOACH_LMTP_HOST:KEHOACH_LMTP_PORT; "
        "default: KEHOACH_LMTP_ENABLED.",
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="A health check instead: log into the mailbox (with --imap) and ask the LMTP address for its greeting "
        "(with --lmtp); exit 1 when one fails.",
    ),
) -> None:
    """Receive the replies officials send to their emails' reply addresses (duyet+…@KEHOACH_REPLY_DOMAIN) and apply each once; runs until stopped (Ctrl-C or SIGTERM).

    A reply is acknowledged (filed into KEHOACH_IMAP_DONE_FOLDER, or answered 250 to the relay) only once it was applied; one that could not be is tried again later. Safe to run on several machines at once."""  # noqa: E501 (typer keeps a paragraph's line breaks in --help)
    import asyncio
    import logging
    import signal

    settings = load_settings()
    use_imap = bool(settings.imap_host) if imap is None else imap
    use_lmtp = settings.lmtp_enabled if lmtp is None else lmtp
    if not (use_imap or use_lmtp):
        typer.echo(
            "Nothing to receive from: set KEHOACH_IMAP_HOST (a mailbox) or KEHOACH_LMTP_ENABLED, "
            "or give --imap or --lmtp.",
            err=True,
        )
        raise typer.Exit(2)
    if check:
        _check(settings, imap=use_imap, lmtp=use_lmtp)
        return
    if not settings.reply_domain:
        typer.echo("KEHOACH_REPLY_DOMAIN is empty: replies are off, so there is nothing to receive.", err=True)
        raise typer.Exit(2)
    if use_imap and not settings.imap_host:
        typer.echo("--imap needs a mailbox: set KEHOACH_IMAP_HOST (and _PORT, _TLS, _USER, _PASSWORD).", err=True)
        raise typer.Exit(2)

    from approvals.db import Database
    from approvals.plan import load_plan
    from notifications.emails import Emails
    from notifications.render import shared_renderer
    from service.inbound import make_handler, make_outage_alert
    from service.inbound.role import serve
    from service.security import install_log_redaction

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every LMTP command at INFO
    install_log_redaction()
    plan = load_plan(settings.plan_file)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        db = Database(settings.effective_database_url)
        try:
            emails = Emails.of(plan, settings, shared_renderer())
            handle = make_handler(settings, db, plan, emails)
            parts = " and ".join(
                part
                for part, on in (
                    (f"the mailbox {settings.imap_folder} on {settings.imap_host}:{settings.imap_port}", use_imap),
                    (f"LMTP on {settings.lmtp_host}:{settings.lmtp_port}", use_lmtp),
                )
                if on
            )
            typer.echo(f"Receiving replies to {settings.reply_local_part}+…@{settings.reply_domain} from {parts}")
            alert = make_outage_alert(settings, db, emails)
            await serve(settings, handle, imap=use_imap, lmtp=use_lmtp, stop=stop, on_outage=alert)
        finally:
            await db.dispose()
        typer.echo("Stopped.")

    asyncio.run(main())


def _check(settings, *, imap: bool, lmtp: bool) -> None:
    import asyncio

    from service.inbound.role import check_imap, check_lmtp

    async def main() -> dict[str, tuple[bool, str]]:
        found = {}
        if imap:
            found["imap"] = await check_imap(settings)
        if lmtp:
            found["lmtp"] = await check_lmtp(settings)
        return found

    found = asyncio.run(main())
    for name, (ok, answer) in found.items():
        typer.echo(f"{'ok ' if ok else '!! '}{name}  {answer}")
    if not all(ok for ok, _ in found.values()):
        raise typer.Exit(1)
