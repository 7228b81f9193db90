"""The `kehoach` command."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections import Counter
from pathlib import Path

import typer

from approvals.errors import InvalidInput
from approvals.plan import PlanError
from approvals.plan.checks import branch_counts
from approvals.plan.loader import check_plan

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
    year: list[int] = typer.Option(
        None,
        "--year",
        min=2000,
        max=2100,
        help="Check that every branch of every stage can be routed in this cycle year, and show how many "
        "branches each stage has then (repeat for several years); default: this year.",
    ),
) -> None:
    """Validate a plan file; print a summary, or every problem with its file, line and path, and exit 1.

    Besides the file's own rules, every branch (unit) of every fan-out and report stage must have someone holding the stage's requester role, and someone who can decide, on the stage's dates in each year checked."""  # noqa: E501 (typer keeps a paragraph's line breaks in --help)
    day = dt.date.fromisoformat(on) if on else dt.date.today()
    years = tuple(year) if year else (day.year,)
    try:
        plan = check_plan(file, years=years)
    except PlanError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"{file}: {len(exc.problems)} problem(s); the plan was not loaded.", err=True)
        raise typer.Exit(1) from None
    current = [a for a in plan.agencies if a.valid_on(day)]
    kinds = Counter(a.kind.value for a in current)
    typer.echo(f"{file}: OK: {plan.plan.title.en}")
    typer.echo(
        f"  agencies: {len(plan.agencies)} ({len(current)} in force on {day}: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        + ")"
    )
    made = len(plan.officials) - len({o.id for o in plan.officials} & named_officials(file))
    typer.echo(
        f"  roles: {len(plan.roles)}, officials: {len(plan.officials)}"
        + (f" ({made} made by unit_officials)" if made else "")
        + f", time zone: {plan.plan.timezone}"
    )
    for agency in plan.agencies:
        for entry in agency.succession:
            word = "verified" if entry.verified else "ASSUMED (not verified)"
            typer.echo(f"  succession: {agency.id} -> {entry.to} for its {entry.duty} duty: {word}")
    counts = {y: branch_counts(plan, y) for y in years}
    for cycle in plan.cycles:
        areas = f", content areas: {', '.join(cycle.content_areas)}" if cycle.content_areas else ""
        typer.echo(f"  cycle {cycle.id} ({cycle.cadence.value}): {len(cycle.stages)} stage(s){areas}")
        for stage in cycle.stages:
            holders = sorted({o.name for role in stage.approvers for o in plan.holders(role, day)})
            if len(holders) > 4:
                holders = holders[:3] + [f"and {len(holders) - 3} more"]
            who = (
                ", ".join(holders)
                if holders
                else ("-" if not stage.approvers else "NOBODY holds the role on this date")
            )
            branches = "  ".join(f"{y}: {counts[y][(cycle.id, stage.id)]} branch(es)" for y in years)
            typer.echo(
                f"    {stage.number:>2} {stage.id:<22} {stage.kind.value:<14} {stage.policy.value:<8} "
                f"{branches}  approvers: {who}"
            )


def named_officials(file: Path) -> set[str]:
    """The ids of the officials the file names itself (not made by unit_officials)."""
    import yaml

    try:
        data = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
        return {o.get("id") for o in data.get("officials") or [] if isinstance(o, dict)}
    except (OSError, yaml.YAMLError, AttributeError):
        return set()


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

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


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
    year: int = typer.Option(None, help="The annual cycle's year; default: this year in the plan's time zone."),
    month: str = typer.Option(None, help="Start the culture-society cycle of a month instead (YYYY-MM)."),
    late: str = typer.Option(
        None,
        "--late",
        metavar="shift|keep",
        help="When some of the cycle's dates have passed: 'shift' moves every date by the days the start is late "
        "(all lie ahead), 'keep' keeps the plan's dates (a step is still due no sooner than the plan's minimum "
        "notice after it opens). Without it you are asked, or, with no terminal, the start is refused.",
    ),
) -> None:
    """Start a cycle on the Prefect server (PREFECT_API_URL): a year's annual cycle, or with --month a month's culture-society cycle. Starting the same one twice returns the same run.

    A cycle started after some of its dates have passed lists them and asks whether to shift them from today or keep them; the choice goes in the audit log."""  # noqa: E501 (typer keeps a paragraph's line breaks in --help)
    import asyncio

    from approvals.cycles import Schedule
    from service.cycles import PrefectNotConfigured, require_prefect_api, start_annual_cycle, start_monthly_cycle
    from service.demo import current_year

    settings = _settings()
    if late not in (None, Schedule.shift, Schedule.keep):
        raise typer.BadParameter("use shift or keep", param_hint="--late")
    if month is not None:
        from flows.cadences import MONTHLY_KIND, month_period

        try:
            period, starts_on = month_period(month)
        except InvalidInput as exc:
            raise typer.BadParameter(str(exc), param_hint="--month") from None
        kind = MONTHLY_KIND
    else:
        from flows.annual_cycle import CYCLE_KIND, cycle_start

        period = str(year or current_year(settings))
        starts_on, kind = cycle_start(int(period)), CYCLE_KIND
    try:
        require_prefect_api()
    except PrefectNotConfigured as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    _choose_schedule(settings, kind=kind, period=period, starts_on=starts_on, choice=late)
    if month is not None:
        run = asyncio.run(start_monthly_cycle(period, "culture-society-cycle/culture-society-cycle"))
        typer.echo(f"culture-society cycle {period}: flow run {run.id} ({run.state.name if run.state else 'created'})")
        return
    run = asyncio.run(start_annual_cycle(int(period), settings.prefect_deployment))
    typer.echo(f"annual cycle {period}: flow run {run.id} ({run.state.name if run.state else 'created'})")


def _choose_schedule(settings, *, kind: str, period: str, starts_on: dt.date, choice: str | None) -> None:
    """A cycle whose dates have passed: list them, take the operator's choice (shift or keep),
    and record it before the run starts. Nothing to ask when no date has passed, or when a run
    already carries the cycle (the choice was made then)."""
    import asyncio
    import sys

    from approvals.cycles import Schedule, calendar, late_by, schedule
    from approvals.db import Database, utcnow
    from approvals.plan import load_plan

    plan = load_plan(settings.plan_file)
    now = utcnow()
    passed = [d for d in calendar(plan, kind, starts_on) if d.at <= now]
    if not passed:
        return
    today = now.astimezone(plan.tz).date()
    days = late_by(starts_on, today)
    if choice is None:
        typer.echo(
            f"{kind}/{period} should have started on {starts_on:%d/%m/%Y}; {len(passed)} of its dates have passed:"
        )
        for d in passed:
            typer.echo(f"  {d.label}: {'opens' if d.what == 'opens' else 'due'} {d.at.astimezone(plan.tz):%d/%m/%Y}")
        if not sys.stdin.isatty():
            typer.echo(
                f"error: choose --late shift (move every date {days} days, so all lie ahead) or --late keep "
                "(keep the plan's dates; each step still gets the plan's minimum notice)",
                err=True,
            )
            raise typer.Exit(2)
        answer = ""
        while answer not in ("s", "k"):
            answer = (
                typer.prompt(f"Shift every date {days} days from today (s), or keep the plan's dates (k)?", default="s")
                .strip()
                .lower()
            )
        choice = Schedule.shift if answer == "s" else Schedule.keep

    async def record():
        db = Database(settings.effective_database_url)
        try:
            async with db.transaction() as session:
                return await schedule(
                    session, plan, kind=kind, period=period, starts_on=starts_on, choice=choice, by="cli", now=now
                )
        finally:
            await db.dispose()

    cycle, changed = asyncio.run(record())
    if not changed:
        typer.echo(
            f"{kind}/{period} is already under way (its dates were {'shifted' if cycle.shift_days else 'kept'}): "
            "nothing changed"
        )
    elif cycle.shift_days:
        typer.echo(f"Dates of {kind}/{period} shifted by {cycle.shift_days} days (recorded in the audit log).")
    else:
        typer.echo(f"Dates of {kind}/{period} kept as planned (recorded in the audit log).")


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
        typer.echo(
            f"audit log BROKEN at row {broken.row_id}: {broken.reason} ({count} rows before it verified)", err=True
        )
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


cycle_app = typer.Typer(help="Cycles: what runs, what needs attention, restarting one.", no_args_is_help=True)
app.add_typer(cycle_app, name="cycle")


async def _find_cycle(db, which: str):
    """A cycle by id, or by KIND/PERIOD (e.g. annual/2026)."""
    import uuid

    from sqlalchemy import select

    from approvals.models import Cycle

    async with db.reads() as session:
        try:
            return await session.get(Cycle, uuid.UUID(which))
        except ValueError:
            kind, _, period = which.partition("/")
            return (await session.execute(select(Cycle).where(Cycle.kind == kind, Cycle.period == period))).scalar()


@cycle_app.command("list")
def cycle_list(
    attention: bool = typer.Option(False, "--attention", help="Only cycles that need a coordinator."),
) -> None:
    """Cycles that have not finished, newest first: their run, what it is doing, and what needs attention."""
    import asyncio

    from sqlalchemy import select

    from approvals.db import Database
    from approvals.models import Cycle

    settings = _settings()

    async def main():
        db = Database(settings.effective_database_url)
        try:
            async with db.reads() as session:
                query = select(Cycle).where(Cycle.finished_at.is_(None)).order_by(Cycle.created_at.desc())
                if attention:
                    query = query.where(Cycle.attention.is_not(None))
                return list((await session.execute(query)).scalars())
        finally:
            await db.dispose()

    found = asyncio.run(main())
    if not found:
        typer.echo("no cycle needs attention" if attention else "no cycle is under way")
        return
    for cycle in found:
        flag = f"  NEEDS ATTENTION: {cycle.attention} ({cycle.attention_detail})" if cycle.attention else ""
        typer.echo(
            f"{cycle.id}  {cycle.kind}/{cycle.period}  run {cycle.run_id or '-'} "
            f"({cycle.run_state or 'not started'}){flag}"
        )


@cycle_app.command("resume")
def cycle_resume(
    cycle: str = typer.Argument(..., help="The cycle: its id, or KIND/PERIOD such as annual/2026."),
    force: bool = typer.Option(
        False, "--force", help="Replace its run even if it looks alive (it is cancelled first)."
    ),
) -> None:
    """Restart a cycle whose run died, failed or ended before the cycle did. The new run goes on
    from where the cycle is in the database: it asks nobody again and sends no email twice."""
    import asyncio

    from approvals.cycles import NotRestartable
    from approvals.db import Database
    from service.cycles import PrefectNotConfigured, PrefectUnavailable, restart_cycle

    settings = _settings()

    async def main():
        db = Database(settings.effective_database_url)
        try:
            found = await _find_cycle(db, cycle)
            if found is None:
                typer.echo(f"error: no cycle {cycle!r} (give its id, or KIND/PERIOD such as annual/2026)", err=True)
                raise typer.Exit(2)
            typer.echo(
                f"Restarting {found.kind}/{found.period}"
                + (f" (needs attention: {found.attention})" if found.attention else "")
                + " ..."
            )
            return found, await restart_cycle(db, settings, found.id, by="cli", force=force)
        finally:
            await db.dispose()

    try:
        found, (run, previous, restart) = asyncio.run(main())
    except NotRestartable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except (PrefectNotConfigured, PrefectUnavailable) as exc:
        typer.echo(f"error: Prefect cannot be reached; try again: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"{found.kind}/{found.period}: flow run {run.id} carries it now (restart {restart}; "
        f"it replaces {previous or 'no run'})"
    )


@app.command()
def status(
    check: list[str] = typer.Option(
        None,
        "--check",
        metavar="NAME",
        help="Only these checks (database, migrations, outbox, wakes, prefect): a health check for one role, "
        "e.g. the dispatcher's `--check database --check outbox`.",
    ),
) -> None:
    """What is running, waiting, overdue and failing, in a terminal: the database, Prefect, the outbox, the runs to resume, the cycles (and which need attention) and the open steps.

    Exit 1 when something needs ops (as /readyz would answer 503)."""  # noqa: E501 (typer keeps a paragraph's line breaks in --help)
    import asyncio
    from types import SimpleNamespace

    from approvals.db import Database, utcnow
    from service.health import checks, read_facts

    settings = _settings()

    async def main():
        db = Database(settings.effective_database_url)
        try:
            app = SimpleNamespace(db=db)
            found = await checks(app)
            facts = await read_facts(app, utcnow()) if found.get("database") == "ok" else None
            return found, facts, await _cycles_under_way(db) if facts else []
        finally:
            await db.dispose()

    found, facts, under_way = asyncio.run(main())
    if check:
        unknown = set(check) - set(found) - {"migrations", "outbox", "wakes"}
        if unknown:
            raise typer.BadParameter(f"unknown check(s): {', '.join(sorted(unknown))}", param_hint="--check")
        found = {name: answer for name, answer in found.items() if name in check}
    width = max(len(name) for name in found)
    for name, answer in found.items():
        mark = "ok " if answer == "ok" else "!! "
        typer.echo(f"{mark}{name:<{width}}  {answer}")
    if facts is not None:
        from approvals.plan import load_plan

        now, tz = dt.datetime.now(dt.UTC), load_plan(settings.plan_file).tz
        oldest = (
            f", the oldest due since {facts.outbox_oldest.astimezone(tz):%d/%m %H:%M}"
            if facts.outbox_queued and facts.outbox_oldest
            else ""
        )
        typer.echo(f"\noutbox           {facts.outbox_queued} queued{oldest}; {facts.outbox_failed} undeliverable")
        typer.echo(
            f"runs to resume   {facts.wakes_queued} queued; {facts.wakes_parked} parked (their cycle needs "
            "a coordinator)"
        )
        typer.echo(f"cycles           {len(under_way)} under way; {facts.cycles_attention} need attention")
        for cycle in under_way:
            flag = f"  NEEDS ATTENTION: {cycle.attention}" if cycle.attention else ""
            typer.echo(
                f"  {cycle.kind}/{cycle.period:<22} run {(cycle.run_id or '-')[:8]} "
                f"{cycle.run_state or 'not started'}{flag}"
            )
        open_total = sum(facts.open_requests.values())
        overdue_total = sum(facts.overdue_requests.values())
        typer.echo(f"open steps       {open_total}, of which {overdue_total} overdue")
        by_stage: dict[tuple[str, str], int] = {}
        for (kind, stage, _status), count in facts.open_requests.items():
            by_stage[(kind, stage)] = by_stage.get((kind, stage), 0) + count
        for (kind, stage), count in sorted(by_stage.items()):
            late = facts.overdue_requests.get((kind, stage), 0)
            typer.echo(f"  {kind}/{stage:<24} {count:>4} open" + (f", {late} overdue" if late else ""))
        typer.echo(
            f"decisions        {sum(facts.decisions.values())} recorded"
            + (
                " (" + ", ".join(f"{n} {o}" for o, n in sorted(facts.decisions.items())) + ")"
                if facts.decisions
                else ""
            )
            + f"; as of {now.astimezone(tz):%d/%m/%Y %H:%M}"
        )
    if any(answer != "ok" for answer in found.values()):
        raise typer.Exit(1)


async def _cycles_under_way(db):
    from sqlalchemy import select

    from approvals.models import Cycle

    async with db.reads() as session:
        return list(
            (
                await session.execute(
                    select(Cycle).where(Cycle.finished_at.is_(None)).order_by(Cycle.created_at.desc()).limit(50)
                )
            ).scalars()
        )
