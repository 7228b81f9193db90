"""The `kehoach` command."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import typer

from approvals.plan import PlanError, load_plan

app = typer.Typer(
    help="kehoach: runs Lạng Sơn's communication plan (Decision 1045/QĐ-TTg) as Prefect flows with email approvals.",
    no_args_is_help=True,
    add_completion=False,
)
plan_app = typer.Typer(help="Check and inspect plan files.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")
app.add_typer(db_app, name="db")


@plan_app.command("check")
def plan_check(
    file: Path = typer.Argument(..., help="The plan file, e.g. plans/lang-son.yaml."),
    on: str = typer.Option(None, help="Show who holds each approver role on this date (YYYY-MM-DD); default today."),
) -> None:
    """Validate a plan file; print a summary, or every problem with its path, and exit 1."""
    try:
        plan = load_plan(file)
    except PlanError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"{file}: {len(exc.problems)} problem(s); the plan was not loaded.", err=True)
        raise typer.Exit(1) from None
    day = dt.date.fromisoformat(on) if on else dt.date.today()
    current = [a for a in plan.agencies if a.valid_on(day)]
    kinds = Counter(a.kind.value for a in current)
    typer.echo(f"{file}: OK: {plan.plan.title.en}")
    typer.echo(f"  agencies: {len(plan.agencies)} ({len(current)} in force on {day}: "
               + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + ")")
    typer.echo(f"  roles: {len(plan.roles)}, officials: {len(plan.officials)}, time zone: {plan.plan.timezone}")
    for cycle in plan.cycles:
        typer.echo(f"  cycle {cycle.id} ({cycle.cadence.value}): {len(cycle.stages)} stage(s)")
        for stage in cycle.stages:
            holders = sorted({o.name for role in stage.approvers for o in plan.holders(role, day)})
            who = ", ".join(holders) if holders else ("-" if not stage.approvers else "NOBODY holds the role on this date")
            typer.echo(f"    {stage.number:>2} {stage.id:<22} {stage.kind.value:<14} {stage.policy.value:<8} approvers: {who}")


def main() -> None:  # pragma: no cover
    app()


def _settings():
    from approvals.config import get_settings

    try:
        return get_settings()
    except ValueError as exc:
        typer.echo(f"Configuration error: {exc}", err=True)
        raise typer.Exit(2) from None


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create or migrate the database schema (KEHOACH_DATABASE_URL)."""
    from approvals.migrate import current, upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url, revision)
    typer.echo(f"Database at revision {current(settings.effective_database_url)}")


@app.command()
def web() -> None:
    """Serve the approval pages and overview (uvicorn) on KEHOACH_WEB_HOST:KEHOACH_WEB_PORT."""
    import uvicorn

    from service.app import create_app
    from service.web import install_log_redaction

    settings = _settings()
    install_log_redaction()
    uvicorn.run(create_app(settings), host=settings.web_host, port=settings.web_port, proxy_headers=False)


@app.command()
def dispatch(
    once: bool = typer.Option(False, "--once", help="Send what is due now and exit."),
) -> None:
    """Send queued emails over SMTP, retrying temporary failures; runs until stopped."""
    import asyncio
    import logging

    from approvals.db import Database
    from service.wiring import make_dispatcher

    settings = _settings()
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

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


@app.command()
def worker() -> None:
    """Serve the Prefect deployments (annual-cycle) so runs can start, suspend and resume."""
    from flows.serve import serve_all

    serve_all()


@app.command()
def mailcatcher() -> None:
    """Run the local mail catcher (SMTP on KEHOACH_SMTP_HOST:KEHOACH_SMTP_PORT) until Ctrl-C."""
    import time

    from notifications.catcher import MailCatcher

    settings = _settings()
    catcher = MailCatcher(settings.mail_dir, host=settings.smtp_host, port=settings.smtp_port)
    catcher.start()
    typer.echo(f"Catching mail on {settings.smtp_host}:{settings.smtp_port} into {settings.mail_dir}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        catcher.stop()


@app.command()
def start(
    year: int = typer.Option(None, help="The annual cycle's year; default: this year in Asia/Ho_Chi_Minh."),
    month: str = typer.Option(None, help="Start the culture-society cycle of a month instead (YYYY-MM)."),
) -> None:
    """Start a cycle on the Prefect server (PREFECT_API_URL): a year's annual cycle, or with
    --month a month's culture-society cycle. Starting the same one twice returns the same run."""
    import asyncio

    from service.cycles import PrefectNotConfigured, require_prefect_api, start_annual_cycle, start_monthly_cycle
    from service.demo import current_year

    settings = _settings()
    period = None
    if month is not None:
        from flows.cadences import month_period

        try:
            period, _ = month_period(month)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--month") from None
    try:
        require_prefect_api()
    except PrefectNotConfigured as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if period is not None:
        run = asyncio.run(start_monthly_cycle(period, "culture-society-cycle/culture-society-cycle"))
        typer.echo(f"culture-society cycle {period}: flow run {run.id} ({run.state.name if run.state else 'created'})")
        return
    run = asyncio.run(start_annual_cycle(year or current_year(settings), settings.prefect_deployment))
    typer.echo(f"annual cycle: flow run {run.id} ({run.state.name if run.state else 'created'})")


@app.command()
def demo(year: int = typer.Option(None, help="The cycle's year; default: this year.")) -> None:
    """Run everything locally: SQLite, a Prefect server, the worker, the web service, the
    dispatcher and a mail catcher; start this year's annual cycle; Ctrl-C stops it all."""
    from service.demo import current_year, run_demo

    settings = _settings()
    run_demo(settings, year or current_year(settings))


audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit log's hash chain; name the first broken row (exit 1)."""
    import asyncio

    from approvals import audit
    from approvals.db import Database

    settings = _settings()

    async def main():
        db = Database(settings.effective_database_url)
        try:
            async with db.sessions() as session:
                return await audit.verify(session)
        finally:
            await db.dispose()

    count, broken = asyncio.run(main())
    if broken:
        typer.echo(f"audit log BROKEN at row {broken.row_id}: {broken.reason} ({count} rows before it verified)", err=True)
        raise typer.Exit(1)
    typer.echo(f"audit log OK: {count} rows verified")


account_app = typer.Typer(help="API accounts for coordinators and viewers.", no_args_is_help=True)
app.add_typer(account_app, name="account")


@account_app.command("add")
def account_add(
    name: str = typer.Argument(..., help="A unique name, e.g. lan.vt"),
    role: str = typer.Option("coordinator", help="coordinator (can act) or viewer (reads only)"),
) -> None:
    """Create an API account and print its token once (keep it: only its hash is stored)."""
    import asyncio

    from approvals.accounts import AccountRole, create_account
    from approvals.db import Database, utcnow

    settings = _settings()
    try:
        chosen = AccountRole(role)
    except ValueError:
        typer.echo(f"unknown role '{role}' (use coordinator or viewer)", err=True)
        raise typer.Exit(2) from None

    async def main() -> str:
        db = Database(settings.effective_database_url)
        try:
            async with db.transaction() as session:
                _, token = await create_account(session, name=name, role=chosen, by="cli", now=utcnow())
            return token
        finally:
            await db.dispose()

    typer.echo(asyncio.run(main()))
