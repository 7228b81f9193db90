"""`kehoach rehearse`: a whole annual cycle of the shipped plan on the real stack, its calendar
compressed (a year in about 30 minutes), with simulated officials acting from their emails, in a
data folder and database of its own. It ends when the consolidated report is issued, with a
summary of the year."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import typer
from sqlalchemy import select

from approvals import audit
from approvals.clock.deadlines import clock_of
from approvals.clock.rehearsals import RehearsalRefused, begin, follow, refuse_here, refuse_real_cycles
from approvals.config import Settings
from approvals.db import Database, utcnow
from approvals.models import Cycle, CycleStage, EconomicEvent
from approvals.plan import Plan, load_plan
from flows.annual_cycle import CYCLE_KIND
from flows.cadences import MONTHLY_KIND
from flows.serve import START_HOUR
from flows.sweep import sweep_with_emails
from notifications.render import shared_renderer
from service.cycles import MONTHLY_DEPLOYMENT, start_annual_cycle, start_monthly_cycle, wait_for_deployment
from service.demo import coordinator_token
from service.local_stack import check_ports, migrate, prefect_and_worker, serving, step
from service.rehearsal.officials import Shares, SimulatedOfficials
from service.rehearsal.summary import YearSummary, issued_report, report_emails_unsent, summarise

log = logging.getLogger(__name__)
# (recorded on, starts on, name): what a coordinator records during the rehearsed year
ECONOMIC_EVENTS = [((6, 10), (6, 20), "Hội chợ Thương mại quốc tế Việt - Trung (Lạng Sơn)")]


@dataclass(frozen=True)
class Rehearsal:
    year: int
    minutes: float
    played: frozenset[str]  # official ids the person plays
    shares: Shares
    seed: int
    stop_at_end: bool


def played_officials(plan: Plan, names: list[str], on: dt.date) -> frozenset[str]:
    """The officials behind each `--play` name: an official's id, or a role (all who hold it that day)."""
    chosen: set[str] = set()
    for name in names:
        if plan.official(name) is not None:
            chosen.add(name)
            continue
        holders = plan.holders(name, on) if any(r.id == name for r in plan.roles) else []
        if not holders:
            raise typer.BadParameter(
                f"{name!r} is neither an official nor a role held in {on.year} in the plan "
                "(e.g. dost_director or lead_agency.director)",
                param_hint="--play",
            )
        chosen |= {o.id for o in holders}
    return frozenset(chosen)


def run_rehearsal(settings: Settings, rehearsal: Rehearsal) -> None:
    try:
        refuse_here(settings.environment)
        migrate(settings)
        asyncio.run(_refuse_real_cycles(settings))
        check_ports(settings, "rehearse")
    except RehearsalRefused as exc:
        typer.secho(f"Refused: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    try:
        # The worker starts nothing by the wall calendar: the rehearsal starts its months and sweeps.
        worker = {"KEHOACH_DATABASE_URL": settings.effective_database_url, "KEHOACH_SCHEDULES": "false"}
        with prefect_and_worker(settings, worker) as prefect:
            asyncio.run(_rehearse(settings, rehearsal, prefect.ui_url))
    except KeyboardInterrupt:
        pass


async def _refuse_real_cycles(settings: Settings) -> None:
    db = Database(settings.effective_database_url)
    try:
        async with db.transaction() as session:
            await refuse_real_cycles(session)
    finally:
        await db.dispose()


async def _rehearse(settings: Settings, rehearsal: Rehearsal, ui_url: str) -> None:
    plan = load_plan(settings.plan_file)
    officials_log = settings.data_dir / "officials.log"
    handler = logging.FileHandler(officials_log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger = logging.getLogger("service.rehearsal")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the terminal shows the year's progress; the file, each official's acts
    async with serving(settings) as stack:
        token = await coordinator_token(stack.db, "rehearse")
        await wait_for_deployment(settings.prefect_deployment)  # the year begins once it can start
        async with stack.db.transaction() as session:
            cycle = await begin(
                session,
                plan,
                kind=CYCLE_KIND,
                year=rehearsal.year,
                minutes=rehearsal.minutes,
                environment=settings.environment,
                by="rehearse",
                now=utcnow(),
            )
            session.expunge(cycle)
        clock = clock_of(plan, cycle)
        began = time.monotonic()
        async with stack.db.reads() as session:
            ended = await issued_report(session, cycle.id)
        if ended is not None:
            step(
                f"This folder's rehearsal of {rehearsal.year} (begun {cycle.rehearsal_began:%d/%m/%Y %H:%M} UTC) is "
                f"over, its report {ended} issued: it is shown as it ended. For a new one, give another --data-dir "
                f"(or remove {settings.data_dir})."
            )
        step(f"Rehearsing the annual cycle {rehearsal.year}: a planned day lasts {clock.days(1).total_seconds():.1f} s")
        run = await start_annual_cycle(rehearsal.year, settings.prefect_deployment)
        base = settings.public_base_url
        officials = SimulatedOfficials(
            plan,
            cycle,
            settings.mail_dir,
            rehearsal.played,
            rehearsal.shares,
            seed=rehearsal.seed,
            for_you=lambda official, subject: step(f"For you ({official}), in the inbox {base}/mail: {subject}"),
        )
        typer.echo("")
        typer.secho("The rehearsal is running. Open:", bold=True)
        typer.echo(f"  Inbox (caught emails):  {base}/mail")
        typer.echo(f"  Coordinators' dashboard: {base}/  (sign in at {base}/login with the token below)")
        typer.echo(f"  Coordinator API token:  {token}")
        typer.echo(f"  Prefect UI (the run):   {ui_url}/runs/flow-run/{run.id}")
        if rehearsal.played:
            typer.echo(f"  You play: {', '.join(sorted(rehearsal.played))}: your emails wait in the inbox for you.")
        typer.echo(f"Simulated officials act on everything else (what each did: {officials_log}). Ctrl-C stops.")
        tasks = [
            asyncio.create_task(officials.run(stack.stop)),
            asyncio.create_task(
                _sweep_on_the_clock(stack.db, plan, settings, clock.days(0.5).total_seconds(), stack.stop)
            ),
            asyncio.create_task(_months_on_the_clock(stack.db, plan, cycle, stack.stop)),
            asyncio.create_task(_events_on_the_clock(stack.db, plan, cycle, base, token, stack.stop)),
        ]
        try:
            number = await _until_issued(stack.db, cycle, plan, stack.stop)
            if number is not None:
                async with stack.db.transaction() as session:
                    summary = await summarise(session, cycle.id)
                async with stack.db.sessions() as session:
                    checked, broken = await audit.verify(session)
                print_summary(summary, officials.tally, time.monotonic() - began)
                typer.echo(
                    f"  Audit log:             {checked} rows, "
                    + (f"BROKEN at row {broken.row_id}: {broken.reason}" if broken else "the chain verifies")
                )
                typer.echo("")
                typer.echo(f"Look again later: KEHOACH_DATA_DIR={settings.data_dir} kehoach status (or audit verify).")
                if not rehearsal.stop_at_end:
                    typer.echo("The stack keeps running so that you can look around. Press Ctrl-C to stop.")
                    await stack.stop.wait()
        finally:
            stack.stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _sweep_on_the_clock(db: Database, plan: Plan, settings: Settings, every: float, stop: asyncio.Event) -> None:
    """The sweep, every half planned day (at least every second, at most every 15 s): reminders,
    escalations, overdue notices, lapses, and the stages whose dates have come."""
    every = min(max(every, 1.0), 15.0)
    renderer = shared_renderer()
    while not stop.is_set():
        try:
            await sweep_with_emails(db, plan=plan, settings=settings, renderer=renderer)
        except Exception:  # the database busy or briefly down: the next pass catches up
            log.exception("a sweep of the rehearsal failed; the next one tries again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def _months_on_the_clock(db: Database, plan: Plan, annual: Cycle, stop: asyncio.Event) -> None:
    """Each month's culture-society cycle, started on the 1st at 08:00 of the rehearsal's calendar
    as the monthly schedule starts it in a real year (February to December: the year begins on
    15 January), on the rehearsal's clock."""
    clock = clock_of(plan, annual)
    year = annual.starts_on.year
    for number in range(annual.starts_on.month + 1, 13):
        first = dt.date(year, number, 1)
        at = clock.wall(dt.datetime.combine(first, dt.time(START_HOUR), tzinfo=plan.tz), not_before=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max((at - utcnow()).total_seconds(), 0))
        if stop.is_set():
            return
        month = f"{first:%Y-%m}"
        try:
            async with db.transaction() as session:
                await follow(
                    session, plan, leading=annual, kind=MONTHLY_KIND, period=month, starts_on=first, by="rehearse"
                )
            await start_monthly_cycle(month, MONTHLY_DEPLOYMENT)
        except Exception:  # Prefect or the database briefly away: that month is missed, the year goes on
            log.exception("the rehearsal could not start the culture-society cycle of %s", month)


async def _events_on_the_clock(
    db: Database, plan: Plan, annual: Cycle, base: str, token: str, stop: asyncio.Event
) -> None:
    """The economic events a coordinator records during the year, through the API as a
    coordinator does (the service starts each one's coverage cycle), on the rehearsal's calendar;
    each once, however often the rehearsal is started."""
    clock = clock_of(plan, annual)
    year = annual.starts_on.year
    for (month, day), (starts_month, starts_day), name in ECONOMIC_EVENTS:
        at = clock.wall(dt.datetime(year, month, day, 9, tzinfo=plan.tz), not_before=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max((at - utcnow()).total_seconds(), 0))
        if stop.is_set():
            return
        starts_on = dt.date(year, starts_month, starts_day)
        event = {"name": f"{name} {year}", "starts_on": f"{starts_on}"}
        async with db.reads() as session:
            recorded = select(EconomicEvent.id).where(
                EconomicEvent.name == event["name"], EconomicEvent.starts_on == starts_on
            )
            if (await session.execute(recorded)).first() is not None:
                continue
        try:
            async with httpx.AsyncClient(timeout=60) as http:
                answer = await http.post(
                    f"{base}/api/v1/events", json=event, headers={"Authorization": f"Bearer {token}"}
                )
            answer.raise_for_status()
            step(f"A coordinator recorded the economic event {event['name']} ({event['starts_on']})")
        except httpx.HTTPError:
            log.exception("the rehearsal could not record the economic event %s", event["name"])


async def _until_issued(db: Database, cycle: Cycle, plan: Plan, stop: asyncio.Event) -> str | None:
    """Progress (each planned month, each stage's new status) until the consolidated report is
    issued (its number), or None when stopped first."""
    clock = clock_of(plan, cycle)
    names = {s.id: f"{s.number}. {s.name.en}" for s in plan.cycle(cycle.kind).stages}
    month: int | None = None
    shown: dict[str, str] = {}
    while not stop.is_set():
        async with db.transaction() as session:
            number = await issued_report(session, cycle.id)
            stages = dict(
                (
                    await session.execute(
                        select(CycleStage.stage, CycleStage.status).where(CycleStage.cycle_id == cycle.id)
                    )
                )
                .tuples()
                .all()
            )
        today = clock.planned(utcnow()).astimezone(plan.tz)
        if today.month != month:
            month = today.month
            step(f"Rehearsal date: {today:%d/%m/%Y}")
        for stage, status in stages.items():
            if shown.get(stage) != status:
                shown[stage] = status
                typer.echo(f"    {today:%d/%m}  stage {names.get(stage, stage)}: {status}", err=True)
        if number is not None:
            step(f"The consolidated report {number} is issued")
            await _until_emailed(db, stop)
            return number
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return None


async def _until_emailed(db: Database, stop: asyncio.Event, patience: float = 120.0) -> None:
    """Wait for the dispatcher to hand the issued report's emails to the mail server."""
    deadline = time.monotonic() + patience
    while not stop.is_set():
        async with db.transaction() as session:
            unsent = await report_emails_unsent(session)
        if unsent == 0:
            step("It is emailed to the PPC and the ministries")
            return
        if time.monotonic() > deadline:
            step(f"{unsent} of its emails are still queued: see `kehoach status` and the dispatcher's errors")
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


def print_summary(summary: YearSummary, tally, seconds: float) -> None:
    d = summary.decisions
    typer.echo("")
    typer.secho("The rehearsed year", bold=True)
    typer.echo(f"  Consolidated report:   {summary.report}")
    typer.echo(f"  Steps:                 {summary.steps} ({summary.rounds} rounds with resubmissions)")
    typer.echo(
        f"  Decisions:             {sum(d.values())} (approved {d.get('approve', 0)}, "
        f"sent back {summary.send_backs}, rejected {d.get('reject', 0)})"
    )
    typer.echo(f"  Reminders:             {summary.reminders}")
    typer.echo(f"  Escalations:           {summary.escalations} (overdue notices {summary.overdue_notices})")
    typer.echo(f"  Expired or lapsed:     {summary.expired}")
    typer.echo(f"  Silent units:          {len(summary.silent_units)} {', '.join(summary.silent_units)}".rstrip())
    typer.echo(f"  Monthly cycles:        {summary.months[0]} started, {summary.months[1]} finished")
    typer.echo(f"  Emails:                {summary.emails}")
    typer.echo(f"  Simulated officials:   {', '.join(f'{k} {v}' for k, v in sorted(tally.items())) or 'none acted'}")
    typer.echo(f"  Wall time:             {seconds / 60:.1f} min")


def rehearsal_folder(data_dir: Path | None) -> Path:
    return (data_dir or Path("kehoach-rehearsal")).resolve()
