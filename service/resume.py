"""Resume waiting flow runs once their request is settled; retry until Prefect answers.

The database is the authority: a decision is committed first, then the run is
resumed. If Prefect is down, or the run has not suspended yet, the request stays
marked "not resumed" and the reconciler tries again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid

from prefect.client.orchestration import get_client
from prefect.client.schemas.responses import SetStateStatus
from prefect.exceptions import ObjectNotFound

from approvals import coordination, requests
from approvals.db import Database, utcnow
from approvals.models import ApprovalRequest
from service.cycles import PrefectNotConfigured, require_prefect_api, start_recorded_cycle

log = logging.getLogger("kehoach.resume")
EVENT_START_WINDOW = dt.timedelta(days=30)  # an event recorded while Prefect was down still gets its cycle


class Resumer:
    def __init__(self, db: Database, *, event_deployment: str = "", problem_deployment: str = ""):
        self.db = db
        self.event_deployment = event_deployment
        self.problem_deployment = problem_deployment
        self.started: set[uuid.UUID] = set()

    async def resume(self, request: ApprovalRequest) -> bool:
        """Try once. True when nothing more is to be done for this request."""
        if not request.waiter_ref:
            return True
        done = await self._try(request)
        if done:
            async with self.db.transaction() as session:
                await requests.mark_resumed(session, request.id, now=utcnow())
        return done

    async def _try(self, request: ApprovalRequest) -> bool:
        run_id = uuid.UUID(request.waiter_ref)
        try:
            require_prefect_api()
            async with get_client() as client:
                run = await client.read_flow_run(run_id)
                state = run.state
                if state is None:
                    return False
                if state.is_final():
                    log.info("run %s is already %s; nothing to resume", run_id, state.name)
                    return True
                key = state.state_details.pause_key or ""
                if not state.is_paused() or not key.startswith("decision-"):
                    return False  # still running towards its wait: later
                # A run waits on the newest round of its step; resuming it makes it re-read the database,
                # so a resume for an older round costs one check, never a wrong outcome.
                result = await client.resume_flow_run(
                    run_id, run_input={"request_id": str(request.id), "outcome": request.status}
                )
                if result.status != SetStateStatus.ACCEPT:
                    log.warning("Prefect refused to resume run %s: %s", run_id, result.details)
                    return False
                log.info("resumed run %s for request %s", run_id, request.id)
                return True
        except ObjectNotFound:
            log.warning("run %s for request %s no longer exists", run_id, request.id)
            return True
        except PrefectNotConfigured as exc:  # the outcome is kept: the reconciler resumes once it is set
            log.warning("cannot resume run %s: %s", run_id, exc)
            return False
        except Exception as exc:  # Prefect unreachable: keep the outcome and retry later
            log.warning("could not reach Prefect to resume run %s: %s", run_id, exc)
            return False

    async def reconcile_once(self) -> int:
        async with self.db.transaction() as session:
            waiting = await requests.requests_awaiting_resume(session)
        resumed = 0
        for request in waiting:
            resumed += await self.resume(request)
        await self.start_recorded_cycles()
        return resumed

    async def start_recorded_cycles(self) -> int:
        """Start the cycle of each recorded economic event and problem that has none yet (its
        run links the cycle). Idempotent by record: Prefect returns the existing run for the
        same key, so a restart or a retry never starts a second."""
        since = utcnow() - EVENT_START_WINDOW
        async with self.db.transaction() as session:
            waiting = []
            if self.event_deployment:
                waiting += [(e.id, "economic event", self.event_deployment, "event_id", "economy-event")
                            for e in await coordination.events_without_cycle(session, since=since)]
            if self.problem_deployment:
                waiting += [(p.id, "problem", self.problem_deployment, "problem_id", "problem")
                            for p in await coordination.problems_without_cycle(session, since=since)]
        started = 0
        for record_id, what, deployment, parameter, key in waiting:
            if record_id in self.started:
                continue
            try:
                run = await start_recorded_cycle(deployment, {parameter: str(record_id)}, f"{key}-{record_id}")
            except Exception as exc:  # Prefect unreachable or the worker not up yet: next round
                log.warning("could not start the cycle of %s %s: %s", what, record_id, exc)
                continue
            self.started.add(record_id)
            started += 1
            log.info("started run %s for %s %s", run.id, what, record_id)
        return started

    async def run_forever(self, interval: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.reconcile_once()
            except Exception:
                log.exception("resume reconciliation failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except asyncio.TimeoutError:
                pass
