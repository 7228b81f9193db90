"""Prefect tasks shared by every cycle: open a stage's approval, wait for it, record it."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
import weakref
from contextlib import asynccontextmanager

from prefect import task
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.logging import get_run_logger
from sqlalchemy import select

from approvals import coordination, requests, submissions
from approvals.config import Settings, get_settings
from approvals.db import Database, utcnow
from approvals.models import ApprovalRequest, Cycle, CycleStage, RequestStatus, StageStatus
from approvals.plan import load_plan
from approvals.presentation import cycle_digest_messages
from flows.emails import mail_domain, queue_link_emails, queue_submission_email
from notifications.links import queue_plain_messages
from notifications.render import shared_renderer

MAX_WAITS = 100


class StageDecision(RunInput):
    """What the service sends when it resumes a run: the database stays the authority."""

    request_id: str
    outcome: RequestStatus  # approved, rejected, changes_requested or expired


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


@task(name="open-stage", retries=2, retry_delay_seconds=5)
async def open_stage(*, cycle_kind: str, period: str, starts_on: dt.date, stage_id: str, waiter_ref: str,
                     data: dict | None = None) -> list[str]:
    """Open every branch of a stage (one per unit for a fan-out, else one), each in one
    transaction with its emails and audit rows; return the request ids.

    An approval stage asks its approvers at once. A stage that starts with a submission
    (materials, an outlet's plan, a budget, the annual report) waits for it: the holder of the
    stage's requester role gets a link to the form, and the approvers are asked once it arrives.
    Idempotent by (cycle, stage, branch): a re-run after resume finds the open requests.
    `data` is what an approval stage shows its approvers (a problem raised with the PPC).
    """
    settings = get_settings()
    plan = load_plan(settings.plan_file)
    renderer = shared_renderer()
    stage = requests.stage_of(plan, cycle_kind, stage_id)
    link_ttl = dt.timedelta(days=settings.link_ttl_days)
    ids = []
    async with database(settings) as db:
        for subject in plan.branches(stage, requests.local_day(plan, utcnow())):
            async with db.transaction() as session:
                cycle = await requests.get_or_create_cycle(session, kind=cycle_kind, period=period, starts_on=starts_on)
                now = utcnow()
                if stage.kind.submitted:
                    opened = await submissions.open_submission(
                        session, plan=plan, secret=settings.link_secret_bytes(), cycle=cycle, stage_id=stage_id,
                        subject=subject, waiter_ref=waiter_ref, now=now, link_ttl=link_ttl)
                    request = opened.opened.request
                    if opened.asked is not None:
                        await queue_submission_email(session, plan=plan, settings=settings, renderer=renderer,
                                                     request=request, cycle=cycle, asked=opened.asked)
                else:
                    day = requests.local_day(plan, now)
                    submitter = plan.holders(stage.requester, day, unit=subject or None) if stage.requester else []
                    approval = await requests.open_request(
                        session, plan=plan, secret=settings.link_secret_bytes(), cycle=cycle, stage_id=stage_id,
                        subject=subject, waiter_ref=waiter_ref, link_ttl=link_ttl, now=now,
                        requested_by=submitter[0].id if submitter else None, data=data)
                    request = approval.request
                    await queue_link_emails(session, kind="approval_request", plan=plan, settings=settings,
                                            renderer=renderer, request=request, cycle=cycle,
                                            notify=approval.new_assignments)
                ids.append(str(request.id))
    get_run_logger().info("Stage %s of %s/%s waits on %d request(s)", stage_id, cycle_kind, period, len(ids))
    return ids


async def cycle_cancelled(session, cycle_id: uuid.UUID) -> bool:
    return bool(await coordination.cancelled_cycles(session, [cycle_id]))


async def stopped_before(*, cycle_kind: str, period: str, stage_id: str) -> bool:
    """Whether a coordinator cancelled the cycle before this stage began. A run replays its
    stages from the top after every resume: the stages it had begun replay as they were."""
    settings = get_settings()
    async with database(settings) as db, db.transaction() as session:
        cycle = (await session.execute(select(Cycle).where(Cycle.kind == cycle_kind, Cycle.period == period))).scalar()
        if cycle is None or not await cycle_cancelled(session, cycle.id):
            return False
        begun = (await session.execute(select(CycleStage.id).where(
            CycleStage.cycle_id == cycle.id, CycleStage.stage == stage_id))).first()
        return begun is None


async def wait_for_all(request_ids: list[str]) -> list[str]:
    """Suspend (holding no process) until every branch of a step is settled in the database;
    return the settled rounds' request ids, in the same order.

    A request for changes is not the end of a branch: its submitter is asked to resubmit and
    the run keeps waiting, now on the next round. Each wait has its own key: after a resume
    the run starts again from the top and a used key hands back the old input at once, so a
    resume that settled nothing (another branch, a Resume pressed by hand) simply waits again.
    A cancelled cycle ends the wait with whatever was settled.
    """
    settings = get_settings()
    for attempt in range(MAX_WAITS):
        async with database(settings) as db, db.transaction() as session:
            latest = [await requests.latest_round(session, uuid.UUID(i)) for i in request_ids]
            cancelled = await cycle_cancelled(session, latest[0].cycle_id)
        statuses = [RequestStatus(r.status) for r in latest]
        if cancelled or not any(s.open or s is RequestStatus.changes_requested for s in statuses):
            return [str(r.id) for r in latest]
        for request, status in zip(latest, statuses):
            if status is RequestStatus.changes_requested:
                await record_stage(str(request.id))
                await ask_for_resubmission(str(request.id))
        await suspend_flow_run(wait_for_input=StageDecision, key=f"decision-{request_ids[0]}-{attempt}", timeout=None)
    raise RuntimeError(f"requests {', '.join(request_ids)} still unsettled after {MAX_WAITS} resumes")


async def any_approved(request_ids: list[str]) -> bool:
    settings = get_settings()
    async with database(settings) as db, db.transaction() as session:
        return any([(await session.get(ApprovalRequest, uuid.UUID(i))).status == RequestStatus.approved.value
                    for i in request_ids])


@task(name="ask-resubmission", retries=2, retry_delay_seconds=5)
async def ask_for_resubmission(request_id: str) -> bool:
    """Email the submitter a link to resubmit, once (the link and its email in one transaction)."""
    settings = get_settings()
    plan = load_plan(settings.plan_file)
    async with database(settings) as db, db.transaction() as session:
        asked = await submissions.ask_resubmission(
            session, plan=plan, secret=settings.link_secret_bytes(), request_id=uuid.UUID(request_id), now=utcnow(),
            link_ttl=dt.timedelta(days=settings.link_ttl_days))
        if asked is not None:
            request = await session.get(ApprovalRequest, asked.link.request_id)
            cycle = await session.get(Cycle, request.cycle_id)
            await queue_submission_email(session, plan=plan, settings=settings, renderer=shared_renderer(),
                                         request=request, cycle=cycle, asked=asked)
    return asked is not None


@task(name="record-stage", retries=2, retry_delay_seconds=5)
async def record_stage(request_id: str) -> str:
    """The stage's status from the latest rounds of all its branches."""
    settings = get_settings()
    async with database(settings) as db, db.transaction() as session:
        status = await requests.record_stage_result(session, request_id=uuid.UUID(request_id), now=utcnow())
    return status.value


@task(name="mark-stage", retries=2, retry_delay_seconds=5)
async def mark_stage(*, cycle_kind: str, period: str, stage_id: str, status: str) -> str:
    """Record a stage that has no request of its own (the implementation period)."""
    settings = get_settings()
    async with database(settings) as db, db.transaction() as session:
        cycle = (await session.execute(select(Cycle).where(Cycle.kind == cycle_kind, Cycle.period == period))).scalar_one()
        await requests.set_stage_status(session, cycle_id=cycle.id, stage=stage_id, status=StageStatus(status),
                                        now=utcnow())
    return status


@task(name="cycle-digest", retries=2, retry_delay_seconds=5)
async def send_cycle_digest(*, cycle_kind: str, period: str, event: str) -> int:
    """Tell the coordinators a cycle started or finished (once per cycle and event)."""
    settings = get_settings()
    plan = load_plan(settings.plan_file)
    async with database(settings) as db, db.transaction() as session:
        cycle = (await session.execute(select(Cycle).where(Cycle.kind == cycle_kind, Cycle.period == period))).scalar_one()
        statuses = {row.stage: row.status for row in (await session.execute(
            select(CycleStage).where(CycleStage.cycle_id == cycle.id))).scalars()}
        messages = cycle_digest_messages(plan, cycle, statuses, event=event, at=utcnow(), tz=settings.tz,
                                         base_url=settings.public_base_url)
        return await queue_plain_messages(session, renderer=shared_renderer(), messages=messages,
                                          domain=mail_domain(settings))
