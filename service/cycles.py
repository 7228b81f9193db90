"""Starting cycles on the Prefect server (what ops and `kehoach demo` do)."""

from __future__ import annotations

import asyncio
import time

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments.flow_runs import arun_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL


class PrefectNotConfigured(RuntimeError):
    """No PREFECT_API_URL: kehoach never lets Prefect start a temporary server of its own."""


def require_prefect_api() -> str:
    """The configured Prefect API, or PrefectNotConfigured. Without this check the Prefect client
    quietly starts a temporary server in the calling process (its "ephemeral mode"): a web
    service would then resume runs on a server no worker listens to, and a start would wait
    for deployments that cannot appear."""
    url = PREFECT_API_URL.value()
    if not url:
        raise PrefectNotConfigured("PREFECT_API_URL is not set: point it at the Prefect server "
                                   "(e.g. http://127.0.0.1:4200/api); `kehoach demo` starts one and sets it")
    return url


async def wait_for_deployment(name: str, timeout: float = 120) -> None:
    """The serve process registers deployments when it starts; wait for it."""
    require_prefect_api()
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while True:
            try:
                await client.read_deployment_by_name(name)
                return
            except ObjectNotFound:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"deployment {name!r} did not appear within {timeout:.0f} s: is the worker running?")
                await asyncio.sleep(0.5)


async def start_monthly_cycle(month: str, deployment: str, *, wait: float = 120) -> FlowRun:
    """Create a month's culture-society run (what the monthly schedule does); idempotent per month."""
    await wait_for_deployment(deployment, wait)
    return await arun_deployment(
        deployment, parameters={"month": month}, timeout=0, idempotency_key=f"culture-society-{month}",
        as_subflow=False,
    )


async def start_recorded_cycle(deployment: str, parameters: dict, key: str) -> FlowRun:
    """Create the run of a recorded event's or problem's cycle; the same key twice returns the existing run."""
    require_prefect_api()
    return await arun_deployment(deployment, parameters=parameters, timeout=0, idempotency_key=key,
                                 as_subflow=False)


async def start_annual_cycle(year: int, deployment: str, *, wait: float = 120) -> FlowRun:
    """Create the year's run; starting the same year twice returns the existing run."""
    await wait_for_deployment(deployment, wait)
    return await arun_deployment(
        deployment, parameters={"year": year}, timeout=0, idempotency_key=f"annual-cycle-{year}",
        as_subflow=False,
    )
