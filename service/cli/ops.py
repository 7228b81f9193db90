"""Keeping the service: `kehoach db upgrade`, `audit verify`, `account add` and `status`."""

from __future__ import annotations

import datetime as dt

import typer

from service.cli.common import load_settings

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create or migrate the database schema (KEHOACH_DATABASE_URL)."""
    from service.migrate import current, upgrade

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url, revision)
    typer.echo(f"Database at revision {current(settings.effective_database_url)}")


audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit log's hash chain; name the first broken row (exit 1)."""
    import asyncio

    from approvals import audit
    from approvals.db import Database

    settings = load_settings()

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


@account_app.command("add")
def account_add(
    name: str = typer.Argument(..., help="A unique name, e.g. lan.vt"),
    role: str = typer.Option("coordinator", help="coordinator (can act) or viewer (reads only)"),
) -> None:
    """Create an API account and print its token once (keep it: only its hash is stored)."""
    import asyncio

    from approvals.db import Database, utcnow
    from approvals.people.accounts import AccountRole, create_account

    settings = load_settings()
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


def status(
    check: list[str] = typer.Option(
        None,
        "--check",
        metavar="NAME",
        help="Only these checks (database, migrations, outbox, wakes, prefect, signing): a health check for one role, "
        "e.g. the dispatcher's `--check database --check outbox`.",
    ),
) -> None:
    """What is running, waiting, overdue and failing, in a terminal: the database, Prefect, the outbox, the Zalo and SMS channels (and which is failing), the runs to resume, the cycles (and which need attention) and the open steps.

    Exit 1 when something needs ops (as /readyz would answer 503, or a channel is failing)."""  # noqa: E501 (typer keeps a paragraph's line breaks in --help)
    import asyncio
    from types import SimpleNamespace

    from approvals.db import Database, utcnow
    from approvals.plan import load_plan
    from service.health import checks, read_facts

    settings = load_settings()

    async def main():
        db = Database(settings.effective_database_url)
        try:
            app = SimpleNamespace(db=db, settings=settings, plan=load_plan(settings.plan_file))
            found = await checks(app)
            facts = await read_facts(app, utcnow()) if found.get("database") == "ok" else None
            if facts is not None:  # not a /readyz check: a provider failing does not make the web unready
                found["channels"] = "; ".join(str(failing) for failing in facts.channels.failing) or "ok"
            return found, facts, await _cycles_under_way(db) if facts else []
        finally:
            await db.dispose()

    found, facts, under_way = asyncio.run(main())
    if check:
        unknown = set(check) - set(found) - {"migrations", "outbox", "wakes", "channels"}
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
        for channel in sorted({c for c, _ in facts.channels.messages}):
            counts = {st: n for (c, st), n in facts.channels.messages.items() if c == channel}
            reported = {d: n for (c, d), n in facts.channels.deliveries.items() if c == channel}
            unreached = reported.get("undelivered", 0) + reported.get("unconfirmed", 0)
            typer.echo(
                f"{channel:<16} {counts.get('sent', 0)} sent ({reported.get('delivered', 0)} delivered, "
                f"{unreached} not in time), {counts.get('queued', 0)} queued, "
                f"{counts.get('failed', 0)} failed (the email went instead)"
            )
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
