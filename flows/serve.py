"""Serve the deployments: the process that picks up scheduled and resumed runs."""

from __future__ import annotations

from prefect import serve
from prefect.types.entrypoint import EntrypointType

from flows.annual_cycle import annual_cycle

DEPLOYMENTS = {"annual-cycle": annual_cycle}


def serve_all(limit: int | None = None) -> None:
    deployments = [
        flow.to_deployment(name=name, entrypoint_type=EntrypointType.MODULE_PATH,
                           description=flow.__doc__, tags=["kehoach"])
        for name, flow in DEPLOYMENTS.items()
    ]
    # Keep schedules running when this process stops: a restart must not pause the plan.
    serve(*deployments, pause_on_shutdown=False, limit=limit)
