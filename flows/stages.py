"""Prefect tasks shared by every cycle: carry the cycle, open a stage, wait for it, record it.

The database is the authority. Every task here is idempotent and cheap to run again: a run
replays from the top after each resume, and a restarted run (on any worker machine) picks up
where the cycle is from the database alone; no task result is kept between runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
import weakref
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypedDict

from prefect import task
from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.flow_runs import asuspend_flow_run
from prefect.logging import get_run_logger
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import coordination
from approvals.clock import deadlines
from approvals.config import Settings, get_settings
from approvals.db import Database, utcnow
from approvals.errors import NotFound
from approvals.models import Cycle, CycleStage
from approvals.plan import load_plan
from approvals.routing import stages, steps, submissions, submitting
from approvals.running import cycles
from approvals.statuses import StageStatus
from notifications.emails import Emails
from notifications.render import shared_renderer

log = logging.getLogger("kehoach.flows")
WAIT_KEY = "stage:{stage}:{nonce}"  # the service resumes a run paused at a key of this form
BRANCHES_PER_TRANSACTION = 20


class StepOptions(TypedDict):
    retries: int
    retry_delay_seconds: int
    cache_policy: CachePolicy
    persist_result: bool


# Nothing is kept between runs: the database is read again (see the module's docstring).
STEP = StepOptions(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, persist_result=False)

# One Database (engine and connection pool) per event loop and URL, kept for the tasks that
# follow in the same flow run: a new engine per task reconnected and compiled every statement
# again (about 10 ms a task). Keyed by the loop because pooled async connections belong to the
# loop that opened them; a loop that ends takes its entry with it.
_DATABASES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Database]] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def database(settings: Settings):
    url = settings.effective_database_url
    per_loop = _DATABASES.setdefault(asyncio.get_running_loop(), {})
    if url not in per_loop:
        per_loop[url] = Database(url)
    yield per_loop[url]


async def cycle_of(session, cycle_kind: str, period: str) -> Cycle:
    return (await session.execute(select(Cycle).where(Cycle.kind == cycle_kind, Cycle.period == period))).scalar_one()


# Carrying the cycle ---------------------------------------------------------------------------


@task(name="take-cycle", **STEP)
async def take_cycle(*, cycle_kind: str, period: str, starts_on: dt.date, run_id: str) -> dict:
    """Carry the cycle, or join the run that does. A run that carried it and is over (failed,
    crashed, cancelled) is replaced; a live one (running, waiting, scheduled) is joined."""
    settings = get_settings()
    async with database(settings) as db, db.transaction() as session:
        cycle = await steps.get_or_create_cycle(session, kind=cycle_kind, period=period, starts_on=starts_on)
        taken = await cycles.claim(session, cycle, run_id=run_id, now=utcnow())
    if taken.taken or not taken.owner:
        return {"cycle_id": str(cycle.id), "owner": run_id, "taken": True}
    if await _run_is_over(taken.owner):
        async with database(settings) as db, db.transaction() as session:
            cycle = await session.get(Cycle, cycle.id)
            taken = await cycles.claim(session, cycle, run_id=run_id, now=utcnow(), replacing=taken.owner)
    return {"cycle_id": str(cycle.id), "owner": taken.owner, "taken": taken.taken}


async def _run_is_over(run_id: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            run = await client.read_flow_run(uuid.UUID(run_id))
        except ObjectNotFound:
            return True
    return run.state is not None and run.state.is_final()


class Heartbeat:
    """While the run works it says so every few seconds; the service marks a cycle whose run
    went silent while working (its process died) as needing attention."""

    def __init__(self, cycle_id: uuid.UUID, run_id: str, every: float):
        self.cycle_id, self.run_id, self.every = cycle_id, run_id, every
        self._task: asyncio.Task | None = None

    async def _beat(self) -> None:
        settings = get_settings()
        while True:
            try:
                async with database(settings) as db, db.transaction() as session:
                    await cycles.beat(
                        session, self.cycle_id, run_id=self.run_id, state=cycles.RunState.running, now=utcnow()
                    )
            except Exception:  # a missed beat is only late: the next one tries again
                log.warning("heartbeat of cycle %s failed", self.cycle_id, exc_info=True)
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait(self, stage_id: str) -> None:
        """Suspend, holding no process, until the service wakes the run at this stage. The beat
        stops first and the cycle says it waits, so a silent heartbeat never reads as a crash."""
        await self.stop()
        settings = get_settings()
        async with database(settings) as db, db.transaction() as session:
            await cycles.beat(session, self.cycle_id, run_id=self.run_id, state=cycles.RunState.waiting, now=utcnow())
        # A fresh key each time: a used key hands back its old answer at once (Prefect).
        await asuspend_flow_run(key=WAIT_KEY.format(stage=stage_id, nonce=uuid.uuid4().hex[:12]), timeout=None)


async def report_failure(cycle_id: uuid.UUID, run_id: str, error: BaseException) -> None:
    """The run is failing: the cycle needs a coordinator, who is told once."""
    settings = get_settings()
    async with database(settings) as db, db.transaction() as session:
        marked = await cycles.needs_attention(
            session,
            cycle_id,
            reason=cycles.Attention.run_failed,
            detail=f"{type(error).__name__}: {error}",
            run_id=run_id,
            now=utcnow(),
        )
        if marked is not None:
            await Emails.of(load_plan(settings.plan_file), settings, shared_renderer()).cycle_attention(session, marked)


@task(name="finish-cycle", **STEP)
async def finish_cycle(*, cycle_kind: str, period: str, run_id: str) -> bool:
    settings = get_settings()
    async with database(settings) as db, db.transaction() as session:
        cycle = await cycle_of(session, cycle_kind, period)
        return await cycles.finish(session, cycle.id, run_id=run_id, now=utcnow())


# Stages ---------------------------------------------------------------------------------------


@task(name="schedule-stage", **STEP)
async def schedule_stage(*, cycle_kind: str, period: str, stage_id: str) -> bool:
    """A stage that opens on its own date: True when the date has come (it opens now), else it
    is recorded as scheduled and the sweep wakes the run on the day."""
    settings = get_settings()
    plan = load_plan(settings.plan_file)
    stage = steps.stage_of(plan, cycle_kind, stage_id)
    async with database(settings) as db, db.transaction() as session:
        cycle = await cycle_of(session, cycle_kind, period)
        at = deadlines.planned_opening(plan, stage, cycle)
        if at is None or utcnow() >= at:
            return True
        await stages.set_stage_status(
            session, cycle_id=cycle.id, stage=stage_id, status=StageStatus.scheduled, now=utcnow()
        )
        row = await _locked_stage(session, cycle.id, stage_id)
        row.opens_at = at
    get_run_logger().info("Stage %s of %s/%s opens on %s", stage_id, cycle_kind, period, at.astimezone(plan.tz))
    return False


@task(name="open-stage", **STEP)
async def open_stage(
    *, cycle_kind: str, period: str, starts_on: dt.date, stage_id: str, waiter_ref: str, data: dict | None = None
) -> int:
    """Open every branch of a stage (one per unit for a fan-out or a report, else one), a few
    branches per transaction, each with its emails and audit rows; return how many branches.

    An approval stage asks its approvers at once. A stage that starts with a submission
    (materials, an outlet's plan, a budget, the annual report) waits for it: the holder of the
    stage's requester role gets a link to the form, and the approvers are asked once it arrives.
    Idempotent by (cycle, stage, branch): a run that died halfway opens the rest, and once every
    branch is open a replay costs one read. `data` is what an approval stage shows its approvers.
    """
    settings = get_settings()
    async with database(settings) as db:
        opened = await open_branches(
            db,
            plan=load_plan(settings.plan_file),
            settings=settings,
            renderer=shared_renderer(),
            cycle_kind=cycle_kind,
            period=period,
            starts_on=starts_on,
            stage_id=stage_id,
            waiter_ref=waiter_ref,
            data=data,
        )
    get_run_logger().info("Stage %s of %s/%s waits on %d branch(es)", stage_id, cycle_kind, period, opened)
    return opened


async def open_branches(
    db: Database,
    *,
    plan,
    settings: Settings,
    renderer,
    cycle_kind: str,
    period: str,
    starts_on: dt.date,
    stage_id: str,
    waiter_ref: str | None,
    data: dict | None = None,
) -> int:
    """What `open-stage` does, outside a flow run (see it)."""
    stage = steps.stage_of(plan, cycle_kind, stage_id)
    link_ttl = dt.timedelta(days=settings.link_ttl_days)
    async with db.transaction() as session:
        cycle = await steps.get_or_create_cycle(session, kind=cycle_kind, period=period, starts_on=starts_on)
        done = (
            await session.execute(
                select(CycleStage.branches).where(
                    CycleStage.cycle_id == cycle.id, CycleStage.stage == stage_id, CycleStage.opened_at.is_not(None)
                )
            )
        ).scalar()
    if done is not None:
        return done
    if stage.shows:  # what the earlier stages received travels with every branch (the outlets see it)
        async with db.reads() as session:
            shown = await submitting.carried(session, plan=plan, cycle=cycle, stage_ids=stage.shows)
        data = {**(data or {}), "shown": shown}
    subjects = plan.branches(stage, deadlines.local_day(plan, utcnow()))
    if not subjects:  # no unit carries the stage on the day: nothing to ask, and nobody would settle it
        async with db.transaction() as session:
            await stages.set_stage_status(
                session, cycle_id=cycle.id, stage=stage_id, status=StageStatus.skipped, now=utcnow()
            )
            row = await _locked_stage(session, cycle.id, stage_id)
            row.opened_at, row.branches = utcnow(), 0
        log.warning("stage %s of %s/%s has no unit in force today: skipped", stage_id, cycle_kind, period)
        return 0
    for start in range(0, len(subjects), BRANCHES_PER_TRANSACTION):
        async with db.transaction() as session:
            cycle = await session.get_one(Cycle, cycle.id)
            for subject in subjects[start : start + BRANCHES_PER_TRANSACTION]:
                await open_branch(
                    session,
                    plan=plan,
                    settings=settings,
                    renderer=renderer,
                    cycle=cycle,
                    stage=stage,
                    subject=subject,
                    waiter_ref=waiter_ref,
                    link_ttl=link_ttl,
                    data=data,
                )
    async with db.transaction() as session:
        row = await _locked_stage(session, cycle.id, stage_id)
        row.opened_at, row.branches = utcnow(), len(subjects)
        if stage.go_on_at_due:  # the sweep wakes the run then, settled or not
            row.goes_on_at = deadlines.step_due(plan, stage, await session.get_one(Cycle, cycle.id), row.opened_at)
    return len(subjects)


async def _locked_stage(session: AsyncSession, cycle_id: uuid.UUID, stage_id: str) -> CycleStage:
    row = await stages.lock_stage(session, cycle_id, stage_id)
    if row is None:  # no branch opened it (a stage of no unit on the day) and no status was recorded
        raise NotFound(f"stage {stage_id} of cycle {cycle_id} has no row")
    return row


async def open_branch(session, *, plan, settings, renderer, cycle, stage, subject, waiter_ref, link_ttl, data):
    now = utcnow()
    if stage.kind.submitted:
        opened = await submissions.open_submission(
            session,
            plan=plan,
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id=stage.id,
            subject=subject,
            waiter_ref=waiter_ref,
            now=now,
            link_ttl=link_ttl,
            data=data,
        )
        await Emails.of(plan, settings, renderer).asked(session, opened.opened.request, cycle, opened.asked)
        return
    day = deadlines.local_day(plan, now)
    submitter = plan.holders(stage.requester, day, unit=subject or None) if stage.requester else []
    approval = await steps.open_request(
        session,
        plan=plan,
        secret=settings.link_secret_bytes(),
        cycle=cycle,
        stage_id=stage.id,
        subject=subject,
        waiter_ref=waiter_ref,
        link_ttl=link_ttl,
        now=now,
        requested_by=submitter[0].id if submitter else None,
        data=data,
    )
    await Emails.of(plan, settings, renderer).approval_links(session, approval.request, cycle, approval.new_assignments)


@dataclass(frozen=True)
class StageNow:
    state: stages.StageState
    cancelled: bool  # the cycle was cancelled
    gone_on: bool  # a stage the chain leaves at its due time has reached it (go_on_at_due)

    @property
    def over(self) -> bool:
        """The chain need not wait here."""
        return self.state.settled or self.cancelled or self.gone_on


async def stage_now(*, cycle_kind: str, period: str, stage_id: str) -> StageNow:
    """The stage's state from its branches, whether the cycle was cancelled, and whether the
    stage's due time has come for a stage the chain leaves then (one read)."""
    settings = get_settings()
    async with database(settings) as db, db.reads() as session:
        cycle = await cycle_of(session, cycle_kind, period)
        state = await stages.stage_state(session, cycle.id, stage_id)
        cancelled = await coordination.cycle_cancelled(session, cycle.id)
        goes_on_at = (
            await session.execute(
                select(CycleStage.goes_on_at).where(CycleStage.cycle_id == cycle.id, CycleStage.stage == stage_id)
            )
        ).scalar()
    return StageNow(state, cancelled, goes_on_at is not None and utcnow() >= goes_on_at)


async def cycle_cancelled(*, cycle_kind: str, period: str) -> bool:
    settings = get_settings()
    async with database(settings) as db, db.reads() as session:
        cycle = await cycle_of(session, cycle_kind, period)
        return await coordination.cycle_cancelled(session, cycle.id)


@task(name="record-stage", **STEP)
async def record_stage(*, cycle_kind: str, period: str, stage_id: str, status: str) -> str:
    """Record a stage's status as the chain sees it (a stage with no request of its own, one
    skipped because what it depends on failed, or one the chain went on without)."""
    settings = get_settings()
    async with database(settings) as db, db.transaction() as session:
        cycle = await cycle_of(session, cycle_kind, period)
        await stages.set_stage_status(
            session, cycle_id=cycle.id, stage=stage_id, status=StageStatus(status), now=utcnow()
        )
    return status


@task(name="cycle-digest", **STEP)
async def send_cycle_digest(*, cycle_kind: str, period: str, event: str) -> int:
    """Tell the coordinators a cycle started or finished (once per cycle and event)."""
    settings = get_settings()
    plan = load_plan(settings.plan_file)
    async with database(settings) as db, db.transaction() as session:
        cycle = await cycle_of(session, cycle_kind, period)
        statuses = {
            row.stage: row.status
            for row in (await session.execute(select(CycleStage).where(CycleStage.cycle_id == cycle.id))).scalars()
        }
        return await Emails.of(plan, settings, shared_renderer()).cycle_digest(session, cycle, statuses, event=event)


async def lapsed(*, cycle_kind: str, period: str, stage_id: str) -> bool:
    """Whether the sweep recorded that the chain goes on without this stage."""
    settings = get_settings()
    async with database(settings) as db, db.reads() as session:
        cycle = await cycle_of(session, cycle_kind, period)
        status = (
            await session.execute(
                select(CycleStage.status).where(CycleStage.cycle_id == cycle.id, CycleStage.stage == stage_id)
            )
        ).scalar()
    return status == StageStatus.lapsed.value
