"""The `kehoach` command: one module per concern, the commands registered here in the order
`kehoach --help` lists them."""

from __future__ import annotations

import typer

from service.cli import channels, cycles, inbound, ops, plan, processes, reports

app = typer.Typer(
    help="kehoach: runs Lạng Sơn's communication plan (Decision 1045/QĐ-TTg) as Prefect flows with email approvals.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(plan.plan_app, name="plan")
app.add_typer(ops.db_app, name="db")
for command in (
    processes.web,
    processes.dispatch,
    inbound.inbound,
    processes.worker,
    processes.mailcatcher,
    cycles.start,
    processes.demo,
    processes.rehearse,
):
    app.command()(command)
app.add_typer(ops.audit_app, name="audit")
app.add_typer(ops.account_app, name="account")
app.add_typer(cycles.cycle_app, name="cycle")
app.add_typer(reports.report_app, name="report")
app.add_typer(channels.channels_app, name="channels")
app.command()(ops.status)


def main() -> None:  # pragma: no cover
    app()
