"""`kehoach plan check`: a plan file checked, with every problem's file, line and path."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import typer

from approvals.plan import PlanError
from approvals.plan.checks import branch_counts
from approvals.plan.loader import check_plan

plan_app = typer.Typer(help="Check and inspect plan files.", no_args_is_help=True)


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
    reached = Counter(a.channel.value for o in plan.officials for a in o.reach(day))
    typer.echo(
        f"  channels on {day}: {reached['zalo']} by Zalo, {reached['sms']} by SMS (each with a phone and "
        f"consent), all {reached['email']} by email (the channel of record)"
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
        return {o["id"] for o in data.get("officials") or [] if isinstance(o, dict) and "id" in o}
    except (OSError, yaml.YAMLError, AttributeError):
        return set()
