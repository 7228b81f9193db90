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
