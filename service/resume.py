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
from service.cycles import start_event_cycle

log = logging.getLogger("kehoach.resume")
EVENT_START_WINDOW = dt.timedelta(days=30)  # an event recorded while Prefect was down still gets its cycle


class Resumer:
    def __init__(self, db: Database, *, event_deployment: str = ""):
        self.db = db
        self.event_deployment = event_deployment
        self.started_events: set[uuid.UUID] = set()

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
        except Exception as exc:  # Prefect unreachable: keep the outcome and retry later
            log.warning("could not reach Prefect to resume run %s: %s", run_id, exc)
            return False

    async def reconcile_once(self) -> int:
        async with self.db.transaction() as session:
            waiting = await requests.requests_awaiting_resume(session)
        resumed = 0
        for request in waiting:
            resumed += await self.resume(request)
        await self.start_event_cycles()
        return resumed

    async def start_event_cycles(self) -> int:
        """Start the economy cycle of each recorded event that has none yet (its run links the
        cycle). Idempotent by event: Prefect returns the existing run for the same key."""
        if not self.event_deployment:
            return 0
        async with self.db.transaction() as session:
            events = await coordination.events_without_cycle(session, since=utcnow() - EVENT_START_WINDOW)
        started = 0
        for event in events:
            if event.id in self.started_events:
                continue
            try:
                run = await start_event_cycle(event.id, self.event_deployment)
            except Exception as exc:  # Prefect unreachable or the worker not up yet: next round
                log.warning("could not start the economy cycle of event %s: %s", event.id, exc)
                continue
            self.started_events.add(event.id)
            started += 1
            log.info("started run %s for economic event %s", run.id, event.id)
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
