"""Cycles from the terminal: `kehoach start` (asking what to do with dates already passed),
`kehoach cycle list` and `kehoach cycle resume`."""

from __future__ import annotations

import datetime as dt

import typer

from approvals.errors import InvalidInput
from service.cli.common import load_settings


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

    from approvals.running.cycles import Schedule
    from service.cycles import PrefectNotConfigured, require_prefect_api, start_annual_cycle, start_monthly_cycle
    from service.demo import current_year

    settings = load_settings()
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
    try:
        if month is not None:
            run = asyncio.run(start_monthly_cycle(period, "culture-society-cycle/culture-society-cycle"))
        else:
            run = asyncio.run(start_annual_cycle(int(period), settings.prefect_deployment))
    except Exception as exc:  # Prefect down, slow or refusing: what was recorded stands, the start can be repeated
        typer.echo(
            f"error: the run of {kind}/{period} could not be started: Prefect at {require_prefect_api()} "
            f"answered {type(exc).__name__}: {exc}. Run the same command again once it is up "
            "(starting a cycle twice gives one run).",
            err=True,
        )
        raise typer.Exit(2) from None
    name = f"culture-society cycle {period}" if month is not None else f"annual cycle {period}"
    typer.echo(f"{name}: flow run {run.id} ({run.state.name if run.state else 'created'})")


def _choose_schedule(settings, *, kind: str, period: str, starts_on: dt.date, choice: str | None) -> None:
    """A cycle whose dates have passed: list them, take the operator's choice (shift or keep),
    and record it before the run starts. Nothing to ask when no date has passed, or when a run
    already carries the cycle (the choice was made then)."""
    import asyncio
    import sys

    from approvals.db import Database, utcnow
    from approvals.plan import load_plan
    from approvals.running.cycles import Schedule, calendar, late_by, schedule

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


cycle_app = typer.Typer(help="Cycles: what runs, what needs attention, restarting one.", no_args_is_help=True)


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

    settings = load_settings()

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

    from approvals.db import Database
    from approvals.running.cycles import NotRestartable
    from service.cycles import PrefectNotConfigured, PrefectUnavailable, restart_cycle

    settings = load_settings()

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
