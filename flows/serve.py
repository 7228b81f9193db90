"""Serve the deployments: the process that picks up scheduled and resumed runs."""

from __future__ import annotations

from typing import Any

from prefect import Flow, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron, Schedule
from prefect.types.entrypoint import EntrypointType

from approvals.config import Settings, get_settings
from approvals.plan import Plan, load_plan
from approvals.plan.stages import Cadence
from flows.annual_cycle import CYCLE_KIND as ANNUAL_KIND
from flows.annual_cycle import annual_cycle
from flows.cadences import (
    EVENT_KIND,
    MONTHLY_KIND,
    PROBLEM_KIND,
    culture_society_cycle,
    economy_event_cycle,
    problem_escalation,
)
from flows.sweep import sweep_flow

START_HOUR = 8  # a scheduled cycle starts at 08:00 local time
# deployment name -> (flow, the plan's cycle kind it runs, or None)
DEPLOYMENTS: dict[str, tuple[Flow[..., Any], str | None]] = {
    "annual-cycle": (annual_cycle, ANNUAL_KIND),
    "culture-society-cycle": (culture_society_cycle, MONTHLY_KIND),
    "economy-event-cycle": (economy_event_cycle, EVENT_KIND),
    "problem-escalation": (problem_escalation, PROBLEM_KIND),
    "sweep": (sweep_flow, None),
}
SWEEP_CRON = "*/15 * * * *"


def schedules(plan: Plan, cycle_kind: str | None, sweep: str = SWEEP_CRON) -> list[Schedule]:
    """A deployment's schedules from the plan, in the plan's time zone: a yearly cycle on its
    starts_on day, a monthly one on the 1st; a per-event cycle is started by the service for each
    record; the sweep as configured (every 15 minutes; empty: never by itself)."""
    timezone = plan.plan.timezone
    if cycle_kind is None:
        return [Cron(sweep, timezone=timezone)] if sweep.strip() else []
    kind = next((c for c in plan.cycles if c.id == cycle_kind), None)
    if kind is None or kind.cadence is Cadence.per_event:
        return []
    if kind.cadence is Cadence.monthly:
        return [Cron(f"0 {START_HOUR} 1 * *", timezone=timezone)]
    month, day = kind.start_day
    return [Cron(f"0 {START_HOUR} {day} {month} *", timezone=timezone)]


def deployments(settings: Settings, plan: Plan) -> list[RunnerDeployment]:
    """What the worker serves: each flow with its schedules (none where the settings turn them off)."""
    # Prefect's async_dispatch types to_deployment as "a deployment or a coroutine"; called outside an
    # event loop (serve_all, like every caller), it runs the sync implementation and returns the deployment.
    return [
        flow.to_deployment(  # type: ignore[misc]
            name=name,
            entrypoint_type=EntrypointType.MODULE_PATH,
            schedules=schedules(plan, kind, settings.sweep_cron) if settings.schedules else [],
            description=flow.__doc__,
            tags=["kehoach"],
        )
        for name, (flow, kind) in DEPLOYMENTS.items()
    ]


def serve_all(limit: int | None = None) -> None:
    settings = get_settings()
    # Keep schedules running when this process stops: a restart must not pause the plan.
    serve(*deployments(settings, load_plan(settings.plan_file)), pause_on_shutdown=False, limit=limit)
