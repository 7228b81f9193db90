"""Starting cycles on the Prefect server (what ops and `kehoach demo` do)."""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time

import certifi
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments.flow_runs import arun_deployment
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY, PREFECT_API_URL

from approvals.errors import NotFound, Unavailable
from approvals.running.cycles import NotRestartable

MONTHLY_DEPLOYMENT = "culture-society-cycle/culture-society-cycle"


class PrefectNotConfigured(Unavailable):
    """No PREFECT_API_URL: kehoach never lets Prefect start a temporary server of its own."""


def require_prefect_api() -> str:
    """The configured Prefect API, or PrefectNotConfigured. Without this check the Prefect client
    quietly starts a temporary server in the calling process (its "ephemeral mode"): a web
    service would then resume runs on a server no worker listens to, and a start would wait
    for deployments that cannot appear."""
    url = PREFECT_API_URL.value()
    if not url:
        raise PrefectNotConfigured(
            "PREFECT_API_URL is not set: point it at the Prefect server "
            "(e.g. http://127.0.0.1:4200/api); `kehoach demo` starts one and sets it"
        )
    return url


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The TLS context Prefect's client would build, built once per process: Prefect builds one
    per client, loading the CA bundle each time, which was 8 % of an idle web service's CPU
    (its relay and resumer take a client every round)."""
    if PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value():
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=PREFECT_API_SSL_CERT_FILE.value() or certifi.where())


def prefect_client() -> PrefectClient:
    """A client of the configured Prefect API (call `require_prefect_api` first)."""
    return get_client(httpx_settings={"verify": _tls_context()})


async def wait_for_deployment(name: str, timeout: float = 120) -> None:
    """The serve process registers deployments when it starts; wait for it."""
    require_prefect_api()
    deadline = time.monotonic() + timeout
    async with prefect_client() as client:
        while True:
            try:
                await client.read_deployment_by_name(name)
                return
            except ObjectNotFound:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"deployment {name!r} did not appear within {timeout:.0f} s: is the worker running?"
                    ) from None
                await asyncio.sleep(0.5)


async def start_monthly_cycle(month: str, deployment: str, *, wait: float = 120) -> FlowRun:
    """Create a month's culture-society run (what the monthly schedule does); idempotent per month."""
    await wait_for_deployment(deployment, wait)
    return await arun_deployment(
        deployment,
        parameters={"month": month},
        timeout=0,
        idempotency_key=f"culture-society-{month}",
        as_subflow=False,
    )


async def start_recorded_cycle(deployment: str, parameters: dict, key: str) -> FlowRun:
    """Create the run of a recorded event's or problem's cycle; the same key twice returns the existing run."""
    require_prefect_api()
    return await arun_deployment(deployment, parameters=parameters, timeout=0, idempotency_key=key, as_subflow=False)


async def start_annual_cycle(year: int, deployment: str, *, wait: float = 120) -> FlowRun:
    """Create the year's run; starting the same year twice returns the existing run."""
    await wait_for_deployment(deployment, wait)
    return await arun_deployment(
        deployment,
        parameters={"year": year},
        timeout=0,
        idempotency_key=f"annual-cycle-{year}",
        as_subflow=False,
    )


class PrefectUnavailable(Unavailable):
    """Prefect could not be reached (or refused) while restarting a cycle: try again."""


ALIVE = ("RUNNING", "PENDING", "SCHEDULED", "PAUSED")


def deployment_of(settings, cycle, record_id: str | None) -> tuple[str, dict, str]:
    """The deployment that runs a cycle of this kind, its parameters, and its idempotency key stem."""
    if cycle.kind == "annual" and cycle.period.isdigit():
        return settings.prefect_deployment, {"year": int(cycle.period)}, f"annual-cycle-{cycle.period}"
    if cycle.kind == "culture_society_monthly" and re.fullmatch(r"[0-9]{4}-[0-9]{2}", cycle.period):
        return (
            MONTHLY_DEPLOYMENT,
            {"month": cycle.period},
            f"culture-society-{cycle.period}",
        )
    if cycle.kind == "economy_event" and record_id:
        return settings.event_cycle_deployment, {"event_id": record_id}, f"economy-event-{record_id}"
    if cycle.kind == "problem_escalation" and record_id:
        return settings.problem_cycle_deployment, {"problem_id": record_id}, f"problem-{record_id}"
    raise NotRestartable(f"no deployment runs the cycle {cycle.kind}/{cycle.period}")


async def restart_cycle(
    db, settings, cycle_id, *, by: str, force: bool = False, deployment_wait: float = 30
) -> tuple[FlowRun, str | None, int]:
    """Start a new run for a cycle whose run died, failed or ended early (the cycle needs
    attention). The new run takes the cycle's place from the old one and goes on from the
    database: it opens what was not opened and asks nobody again. A run that is alive is not
    replaced unless `force` (it is then cancelled first, so it never waits forever)."""
    from sqlalchemy import select

    from approvals.models import Cycle, EconomicEvent, ProblemReport

    async with db.reads() as session:
        cycle = await session.get(Cycle, cycle_id)
        if cycle is None:
            raise NotFound(f"no cycle {cycle_id}")
        models: dict[str, type[EconomicEvent] | type[ProblemReport]] = {
            "economy_event": EconomicEvent,
            "problem_escalation": ProblemReport,
        }
        model = models.get(cycle.kind)
        record = (await session.execute(select(model.id).where(model.cycle_id == cycle.id))).scalar() if model else None
    if cycle.finished_at is not None:
        raise NotRestartable("this cycle has finished")
    require_prefect_api()
    deployment, parameters, key = deployment_of(settings, cycle, str(record) if record else None)
    previous = cycle.run_id
    try:
        return await _restart(
            db, cycle, previous, deployment, parameters, key, by=by, force=force, deployment_wait=deployment_wait
        )
    except (NotRestartable, NotFound):
        raise
    except Exception as exc:  # Prefect unreachable, slow or refusing: nothing was changed in Prefect's stead
        raise PrefectUnavailable(f"{type(exc).__name__}: {exc}") from exc


async def _restart(db, cycle, previous, deployment, parameters, key, *, by, force, deployment_wait):
    """The new run is created first, the cycle released after: a restart Prefect refuses halfway
    leaves the cycle as it was (still needing attention, on the dashboard and in the API), never
    released with no run to carry it. Its idempotency key names the restart it is, so trying
    again after a failure between the two steps finds the same run."""
    import uuid as _uuid

    from prefect.states import Cancelled

    from approvals.db import utcnow
    from approvals.running import cycles

    async with prefect_client() as client:
        if previous:
            try:
                run = await client.read_flow_run(_uuid.UUID(previous))
                state = run.state
            except ObjectNotFound:
                state = None
            if state is not None and state.type.value in ALIVE:
                if not force and cycle.attention is None:
                    raise NotRestartable(f"its run {previous} is {state.name}: it is alive (use force to replace it)")
                # Never two runs for one cycle: the old one ends before the new one starts.
                await client.set_flow_run_state(_uuid.UUID(previous), Cancelled(message=f"replaced: {by}"), force=True)
    restart = cycle.restarts + 1
    await wait_for_deployment(deployment, deployment_wait)
    run = await arun_deployment(
        deployment, parameters=parameters, timeout=0, as_subflow=False, idempotency_key=f"{key}-restart-{restart}"
    )
    async with db.transaction() as session:
        released = await cycles.release(session, cycle.id, by=by, now=utcnow(), restart=restart)
    return run, previous, released.restarts
