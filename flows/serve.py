"""Serve the deployments: the process that picks up scheduled and resumed runs."""

from __future__ import annotations

from prefect import serve
from prefect.schedules import Cron
from prefect.types.entrypoint import EntrypointType

from flows.annual_cycle import annual_cycle
from flows.cadences import culture_society_cycle, economy_event_cycle, problem_escalation
from flows.sweep import sweep_flow

TZ = "Asia/Ho_Chi_Minh"
# name -> (flow, schedules). The annual cycle starts on the plan's date each year (15 January, 08:00),
# the culture-society cycle on the first of each month (08:00); an economy cycle is started by the
# service for each event a coordinator records, a problem escalation for each problem; the sweep
# runs every 15 minutes.
DEPLOYMENTS = {
    "annual-cycle": (annual_cycle, [Cron("0 8 15 1 *", timezone=TZ)]),
    "culture-society-cycle": (culture_society_cycle, [Cron("0 8 1 * *", timezone=TZ)]),
    "economy-event-cycle": (economy_event_cycle, []),
    "problem-escalation": (problem_escalation, []),
    "sweep": (sweep_flow, [Cron("*/15 * * * *", timezone=TZ)]),
}


def serve_all(limit: int | None = None) -> None:
    deployments = [
        flow.to_deployment(name=name, entrypoint_type=EntrypointType.MODULE_PATH, schedules=schedules,
                           description=flow.__doc__, tags=["kehoach"])
        for name, (flow, schedules) in DEPLOYMENTS.items()
    ]
    # Keep schedules running when this process stops: a restart must not pause the plan.
    serve(*deployments, pause_on_shutdown=False, limit=limit)
