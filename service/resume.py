"""Deliver wakes to the runs that carry cycles; watch those runs; start recorded cycles.

A decision (or a sweep's expiry, or a cancellation) never calls Prefect: it writes a wake in
its own transaction and answers. This loop, in every `kehoach web` process, delivers them:

- a claim takes due wakes in order, with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
  SQLite's writers take turns), so any number of processes share the queue, each wake
  delivered by one of them;
- a wake resumes the cycle's current run if it waits at that stage; a run still on its way
  to the wait is tried again shortly, Prefect down or slow (every call has a timeout) is
  tried again with back-off, and a wake that can never succeed (the run is over or gone
  while the cycle is not) is parked, and the cycle shown to the coordinators;
- a run that said it was working and went silent (its process died) is asked after in
  Prefect, marked crashed there, and its cycle shown to the coordinators, who are told once;
- a director's signature asked of a remote signing provider is polled until the director
  answers on the phone, which queues the wake of the run that issues the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from prefect.client.schemas.responses import SetStateStatus
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed
from sqlalchemy import or_, update

from approvals import coordination
from approvals.config import Settings
from approvals.consolidated.remote_director import poll_remote_signatures
from approvals.db import Database, claim, utcnow
from approvals.errors import NotFound
from approvals.models import Cycle, Wake
from approvals.plan import Plan
from approvals.routing.stages import ANY_STAGE, RESTART, WakeReason
from approvals.running import cycles
from approvals.signing.signers import signers_for
from approvals.statuses import WakeStatus
from notifications.emails import Emails
from notifications.render import Renderer
from service.cycles import (
    PrefectNotConfigured,
    PrefectUnavailable,
    prefect_client,
    require_prefect_api,
    restart_cycle,
    start_recorded_cycle,
)

log = logging.getLogger("kehoach.resume")
EVENT_START_WINDOW = dt.timedelta(days=30)  # an event recorded while Prefect was down still gets its cycle
WAIT_PREFIX = "stage:"  # flows.stages.WAIT_KEY
BATCH = 50
LEASE = dt.timedelta(seconds=60)
MAX_BACKOFF = 60.0
NO_RUN_PATIENCE = dt.timedelta(hours=1)  # a wake of a cycle no run has taken, this long: parked


def backoff(attempts: int, *, base: float) -> float:
    return min(MAX_BACKOFF, base * 2 ** max(attempts - 1, 0))


@dataclass(frozen=True)
class Claimed:
    id: int
    cycle_id: uuid.UUID
    stage: str
    attempts: int
    created_at: dt.datetime
    lease_until: dt.datetime
    reason: str = ""
    requested_by: str | None = None


@dataclass(frozen=True)
class Delivery:
    status: str  # done, retry, parked
    detail: str = ""
    soon: bool = False  # the run is on its way to its wait: look again shortly
    run_id: str | None = None


class Resumer:
    def __init__(
        self,
        db: Database,
        *,
        plan: Plan | None = None,
        settings: Settings | None = None,
        renderer: Renderer | None = None,
        event_deployment: str = "",
        problem_deployment: str = "",
    ):
        self.db = db
        self.plan = plan
        self.settings = settings
        self.renderer = renderer
        self.event_deployment = event_deployment
        self.problem_deployment = problem_deployment
        self.timeout = settings.resume_timeout if settings else 10.0
        self.started: set[uuid.UUID] = set()
        self.stats = {"done": 0, "retry": 0, "parked": 0}

    # The wake queue --------------------------------------------------------------------------

    async def _claim(self, now: dt.datetime) -> list[Claimed]:
        table = Wake.__table__
        due = (
            (table.c.status == WakeStatus.queued.value)
            & (table.c.next_attempt_at <= now)
            & or_(table.c.lease_until.is_(None), table.c.lease_until < now)
        )
        lease = now + LEASE
        async with self.db.transaction() as session:
            rows = await claim(
                session,
                table,
                due=due,
                order_by=table.c.id,
                limit=BATCH,
                values={"lease_until": lease, "attempts": table.c.attempts + 1},
                returning=[
                    table.c.id,
                    table.c.cycle_id,
                    table.c.stage,
                    table.c.attempts,
                    table.c.created_at,
                    table.c.reason,
                    table.c.requested_by,
                ],
            )
        return sorted(
            (
                Claimed(r.id, r.cycle_id, r.stage, r.attempts, r.created_at, lease, r.reason, r.requested_by)
                for r in rows
            ),
            key=lambda c: c.id,
        )

    async def deliver_once(self) -> int:
        """Deliver what is due now; the number of wakes that reached an end (done or parked)."""
        claimed = await self._claim(utcnow())
        ended = 0
        for wake in claimed:
            try:
                outcome = await self._deliver(wake)
            except Exception as exc:  # one wake that cannot be handled now must not stop the others
                log.exception("delivering wake %s of cycle %s failed", wake.id, wake.cycle_id)
                outcome = Delivery("retry", f"{type(exc).__name__}: {exc}")
            await self._record(wake, outcome)
            self.stats[outcome.status] += 1
            ended += outcome.status != "retry"
        return ended

    async def _record(self, wake: Claimed, outcome: Delivery) -> None:
        now = utcnow()
        fence = (Wake.id == wake.id, Wake.lease_until == wake.lease_until)  # still ours
        if outcome.status == "retry":
            delay = backoff(wake.attempts, base=0.5 if outcome.soon else 2.0)
            values = dict(
                lease_until=None, next_attempt_at=now + dt.timedelta(seconds=delay), last_error=outcome.detail[:1000]
            )
        else:
            status = WakeStatus.done if outcome.status == "done" else WakeStatus.parked
            values = dict(status=status.value, lease_until=None, done_at=now, last_error=outcome.detail[:1000])
            if outcome.run_id is not None:  # else the run it found before, if any, stays
                values["run_id"] = outcome.run_id
        async with self.db.transaction() as session:
            await session.execute(
                update(Wake).where(*fence).values(**values).execution_options(synchronize_session=False)
            )

    async def _deliver(self, wake: Claimed) -> Delivery:
        if wake.stage == RESTART:
            return await self._restart(wake)
        async with self.db.reads() as session:
            cycle = await session.get(Cycle, wake.cycle_id)
        if cycle is None or cycle.finished_at is not None:
            return Delivery("done", "the cycle has finished")
        if not cycle.run_id:
            if utcnow() - wake.created_at > NO_RUN_PATIENCE:  # not a start or restart under way: nobody will
                detail = f"no run has taken the cycle in {NO_RUN_PATIENCE.total_seconds() / 60:.0f} minutes"
                await self._attention(cycle.id, None, cycles.Attention.run_missing, detail)
                return Delivery("parked", detail)
            return Delivery("retry", "no run carries the cycle yet (starting or restarting)")
        try:
            require_prefect_api()
            return await asyncio.wait_for(self._resume(wake, cycle), timeout=self.timeout)
        except PrefectNotConfigured as exc:
            return Delivery("retry", str(exc))
        except TimeoutError:
            return Delivery("retry", f"Prefect did not answer within {self.timeout:.0f} s")
        except Exception as exc:  # Prefect unreachable: the wake waits in the queue
            return Delivery("retry", f"could not reach Prefect: {type(exc).__name__}: {exc}")

    async def _restart(self, wake: Claimed) -> Delivery:
        """A coordinator's restart: a new run takes the cycle (service.cycles.restart_cycle, every
        Prefect call bounded). Prefect down, slow or without the deployment yet: tried again with
        back-off. Refused (the cycle finished, or its run is alive and the restart not forced):
        parked, with why, for the coordinators to see. Done already (a delivery that died after
        the run started): nothing more."""
        async with self.db.reads() as session:
            if await cycles.restarted_since(session, wake.cycle_id, wake.created_at):
                return Delivery("done", "the cycle was restarted")
        if self.settings is None:
            return Delivery("retry", "this process cannot start runs (no settings)")
        try:
            run, _previous, restart = await asyncio.wait_for(
                restart_cycle(
                    self.db,
                    self.settings,
                    wake.cycle_id,
                    by=wake.requested_by or "system",
                    force=wake.reason == WakeReason.restart_forced,
                    deployment_wait=self.timeout,
                ),
                self.timeout * 3,
            )
        except NotFound:
            return Delivery("done", "the cycle is gone")
        except cycles.NotRestartable as exc:
            return Delivery("parked", f"not restarted: {exc}")
        except (PrefectNotConfigured, PrefectUnavailable, TimeoutError) as exc:
            return Delivery("retry", f"not restarted yet: {exc}")
        return Delivery("done", f"restart {restart}: run {run.id}", run_id=str(run.id))

    async def _resume(self, wake: Claimed, cycle: Cycle) -> Delivery:
        run_id = cycle.run_id
        async with prefect_client() as client:
            try:
                run = await client.read_flow_run(uuid.UUID(run_id))
            except ObjectNotFound:
                await self._attention(cycle.id, run_id, cycles.Attention.run_missing, f"flow run {run_id} not found")
                return Delivery("parked", f"flow run {run_id} not found", run_id=run_id)
            state = run.state
            if state is None:
                return Delivery("retry", "the run has no state yet", soon=True, run_id=run_id)
            if state.is_final():
                detail = f"flow run {run_id} is {state.name}"
                await self._attention(cycle.id, run_id, cycles.Attention.run_finished_open, detail)
                return Delivery("parked", detail, run_id=run_id)
            key = state.state_details.pause_key or ""
            if not state.is_paused():
                return Delivery("retry", f"the run is {state.name}, not waiting yet", soon=True, run_id=run_id)
            wanted = WAIT_PREFIX if wake.stage == ANY_STAGE else f"{WAIT_PREFIX}{wake.stage}:"
            if not key.startswith(wanted):
                return Delivery("done", f"the run waits elsewhere ({key})", run_id=run_id)
            result = await client.resume_flow_run(uuid.UUID(run_id))
            if result.status != SetStateStatus.ACCEPT:
                return Delivery("retry", f"Prefect refused to resume: {result.details}", soon=True, run_id=run_id)
        log.info("resumed run %s of cycle %s at %s", run_id, cycle.id, wake.stage or "its wait")
        return Delivery("done", run_id=run_id)

    async def poll_signatures(self) -> list[str]:
        """Ask the remote signing provider about the directors' signatures that wait on a phone;
        each one answered wakes its run (a wake, delivered as the others)."""
        plan, settings = self.plan, self.settings
        if plan is None or settings is None:
            return []
        return await poll_remote_signatures(self.db, signers=lambda: signers_for(settings, plan))

    async def _attention(self, cycle_id: uuid.UUID, run_id: str | None, reason: str, detail: str) -> None:
        async with self.db.transaction() as session:
            marked = await cycles.needs_attention(
                session, cycle_id, reason=reason, detail=detail, run_id=run_id, now=utcnow()
            )
            if marked is not None and self.plan is not None and self.settings is not None:
                await Emails.of(self.plan, self.settings, self.renderer or Renderer()).cycle_attention(
                    session, marked, reason=reason, detail=detail
                )
        if marked is not None:
            log.warning("cycle %s needs attention: %s (%s)", cycle_id, reason, detail)

    # Runs that went silent -------------------------------------------------------------------

    async def watch_runs(self) -> int:
        """Ask Prefect after each run that said it was working and went silent; mark the dead
        ones crashed there and their cycles as needing attention. The number marked."""
        silence = dt.timedelta(seconds=self.settings.run_silence_seconds if self.settings else 90)
        async with self.db.reads() as session:
            silent = await cycles.silent_runs(session, now=utcnow(), grace=silence)
        marked = 0
        for cycle in silent:
            try:
                require_prefect_api()
                reason = await asyncio.wait_for(self._judge(cycle), timeout=self.timeout)
            except Exception as exc:  # Prefect unreachable: ask again next time
                log.warning("could not ask Prefect about run %s: %s", cycle.run_id, exc)
                continue
            if reason is not None:
                await self._attention(cycle.id, cycle.run_id, reason[0], reason[1])
                marked += 1
        return marked

    async def _judge(self, cycle: Cycle) -> tuple[str, str] | None:
        async with prefect_client() as client:
            try:
                run = await client.read_flow_run(uuid.UUID(cycle.run_id))
            except ObjectNotFound:
                return cycles.Attention.run_missing, f"flow run {cycle.run_id} not found"
            state = run.state
            if state is not None and (state.is_paused() or state.is_scheduled()):
                return None  # waiting, or about to start again: not dead
            if state is not None and state.is_final():
                reason = (
                    cycles.Attention.run_failed
                    if state.is_failed()
                    else (cycles.Attention.run_crashed if state.is_crashed() else cycles.Attention.run_finished_open)
                )
                return reason, f"flow run {cycle.run_id} is {state.name}"
            # Prefect still thinks it runs, but it has been silent: its process is gone.
            silent_for = (utcnow() - cycle.heartbeat_at).total_seconds() if cycle.heartbeat_at else 0
            await client.set_flow_run_state(
                uuid.UUID(cycle.run_id), Crashed(message=f"kehoach: no heartbeat for {silent_for:.0f} s"), force=True
            )
            return cycles.Attention.run_crashed, f"flow run {cycle.run_id}: no heartbeat for {silent_for:.0f} s"

    # Cycles of recorded events and problems --------------------------------------------------

    async def start_recorded_cycles(self) -> int:
        """Start the cycle of each recorded economic event and problem that has none yet (its
        run links the cycle). Idempotent by record: Prefect returns the existing run for the
        same key, so a restart or a retry never starts a second."""
        since = utcnow() - EVENT_START_WINDOW
        async with self.db.reads() as session:
            waiting = []
            if self.event_deployment:
                waiting += [
                    (e.id, "economic event", self.event_deployment, "event_id", "economy-event")
                    for e in await coordination.events_without_cycle(session, since=since)
                ]
            if self.problem_deployment:
                waiting += [
                    (p.id, "problem", self.problem_deployment, "problem_id", "problem")
                    for p in await coordination.problems_without_cycle(session, since=since)
                ]
        started = 0
        for record_id, what, deployment, parameter, key in waiting:
            if record_id in self.started:
                continue
            try:
                run = await asyncio.wait_for(
                    start_recorded_cycle(deployment, {parameter: str(record_id)}, f"{key}-{record_id}"),
                    timeout=self.timeout,
                )
            except Exception as exc:  # Prefect unreachable or the worker not up yet: next round
                log.warning("could not start the cycle of %s %s: %s", what, record_id, exc)
                continue
            self.started.add(record_id)
            started += 1
            log.info("started run %s for %s %s", run.id, what, record_id)
        return started

    # The loop ----------------------------------------------------------------------------------

    # Events for ops --------------------------------------------------------------------------

    async def relay_events(self) -> int:
        """Send new audit rows to Prefect as events (`service.event_relay`); 0 when Prefect is not set
        up or cannot be reached (the rows wait: the cursor did not move)."""
        from service.event_relay import relay_once, send_to_prefect

        try:
            require_prefect_api()
            return await asyncio.wait_for(relay_once(self.db, send_to_prefect), timeout=self.timeout)
        except PrefectNotConfigured:
            return 0
        except Exception as exc:  # Prefect slow or down: next round
            log.warning("could not send events to Prefect: %s", exc)
            return 0

    async def run_forever(self, interval: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            busy = False
            try:
                busy = await self.deliver_once() > 0
                await self.watch_runs()
                await self.start_recorded_cycles()
                busy = await self.relay_events() > 0 or busy
                busy = bool(await self.poll_signatures()) or busy
            except Exception:
                log.exception("resume reconciliation failed")
            if busy:
                continue  # more may be due: look again at once
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
