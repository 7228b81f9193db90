"""`kehoach demo`: the whole stack on embedded defaults, in one process tree."""

from __future__ import annotations

import asyncio
import datetime as dt

import typer

from approvals.config import Settings
from approvals.db import Database, utcnow
from approvals.people.accounts import AccountRole, create_account
from approvals.plan import load_plan
from approvals.signing.test_signers import TestSigners
from service.cycles import start_annual_cycle
from service.local_stack import prefect_and_worker, prepare, serving, step


def run_demo(settings: Settings, year: int) -> None:
    prepare(settings, "demo")
    try:
        with prefect_and_worker(settings) as prefect:
            asyncio.run(_serve(settings, year, prefect.ui_url))
    except KeyboardInterrupt:
        pass


async def _serve(settings: Settings, year: int, ui_url: str) -> None:
    async with serving(settings) as stack:
        token = await coordinator_token(stack.db, "demo")
        step(f"Starting the annual cycle {year}")
        shifted = await dates_ahead(stack.db, settings, year)
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
        if settings.signing_file is None:  # the demo signs the issued report with a test CA of its own
            signers = TestSigners(settings.data_dir, load_plan(settings.plan_file))
            await asyncio.to_thread(signers.trust_roots)  # the test CA, made now
            typer.echo(f"  Signing:                test certificates in {signers.folder} (marked as tests; no force)")
        typer.echo("Open the email in the inbox: the press officer's link opens the orientation form (stage 1);")
        typer.echo("once submitted, the director's email links to the page where they decide. Press Ctrl-C to stop.")
        await stack.stop.wait()


async def dates_ahead(db: Database, settings: Settings, year: int) -> int:
    """A newcomer's cycle has every deadline ahead of today, whatever the day: a year whose dates
    have passed is shifted (recorded in the audit log). The days shifted (0: none passed)."""
    from approvals.plan import load_plan
    from approvals.running.cycles import Schedule, calendar, schedule
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


async def coordinator_token(db: Database, by: str) -> str:
    """A coordinator account for this run of `kehoach demo` or `rehearse` (tokens are shown once,
    so each run makes one)."""
    async with db.transaction() as session:
        name = f"{by}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
        _, token = await create_account(session, name=name, role=AccountRole.coordinator, by=by, now=utcnow())
    return token


def current_year(settings: Settings) -> int:
    from approvals.plan import load_plan

    return dt.datetime.now(load_plan(settings.plan_file).tz).year
