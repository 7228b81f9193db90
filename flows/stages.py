"""Prefect tasks shared by every cycle: open a stage's approval, wait for it, record it."""

from __future__ import annotations

import datetime as dt
import uuid
from contextlib import asynccontextmanager

from prefect import task
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.logging import get_run_logger
from sqlalchemy import select

from approvals import requests, submissions
from approvals.config import Settings, get_settings
from approvals.db import Database, utcnow
from approvals.models import ApprovalRequest, Cycle, CycleStage, RequestStatus
from approvals.plan import load_plan
from approvals.presentation import cycle_digest_messages
from flows.emails import mail_domain, queue_link_emails, queue_resubmission_email
from notifications.links import queue_plain_messages
from notifications.render import Renderer

MAX_WAITS = 100


class StageDecision(RunInput):
    """What the service sends when it resumes a run: the database stays the authority."""

    request_id: str
    outcome: RequestStatus  # approved, rejected, changes_requested or expired


@asynccontextmanager
async def database(settings: Settings):
    db = Database(settings.effective_database_url)
    try:
        yield db
    finally:
        await db.dispose()


@task(name="open-approval", retries=2, retry_delay_seconds=5)
async def open_approval(*, cycle_kind: str, period: str, starts_on: dt.date, stage_id: str, waiter_ref: str) -> str:
    """In one transaction: the request, its assignments and token hashes, one email per assignee, the audit row.

    Idempotent by (cycle, stage, subject): a re-run after resume finds the open request.
    """
    settings = get_settings()
    plan = load_plan(settings.plan_file)
    renderer = Renderer()
    async with database(settings) as db, db.transaction() as session:
        cycle = await requests.get_or_create_cycle(session, kind=cycle_kind, period=period, starts_on=starts_on)
        now = utcnow()
        stage = requests.stage_of(plan, cycle_kind, stage_id)
        submitter = plan.holders(stage.requester, requests.local_day(plan, now)) if stage.requester else []
        opened = await requests.open_request(
            session, plan=plan, secret=settings.link_secret_bytes(), cycle=cycle, stage_id=stage_id,
            waiter_ref=waiter_ref, link_ttl=dt.timedelta(days=settings.link_ttl_days), now=now,
            requested_by=submitter[0].id if submitter else None,
        )
        await queue_link_emails(session, kind="approval_request", plan=plan, settings=settings, renderer=renderer,
                                request=opened.request, cycle=opened.cycle, notify=opened.new_assignments)
        request_id = str(opened.request.id)
    get_run_logger().info("Stage %s of %s/%s waits on request %s", stage_id, cycle_kind, period, request_id)
    return request_id


async def wait_for_decision(request_id: str) -> str:
    """Suspend (holding no process) until the step is settled in the database; return the
    settled round's request id.

    A request for changes is not the end of the step: the submitter is asked to resubmit
    and the run keeps waiting, now on the next round. Each wait has its own key: after a
    resume the run starts again from the top and a used key hands back the old input at
    once, so a resume that settled nothing (a Resume pressed by hand) simply waits again.
    """
    settings = get_settings()
    for attempt in range(MAX_WAITS):
        async with database(settings) as db, db.transaction() as session:
            latest = await requests.latest_round(session, uuid.UUID(request_id))
        status = RequestStatus(latest.status)
        if status is RequestStatus.changes_requested:
            await record_stage(str(latest.id))
            await ask_for_resubmission(str(latest.id))
        elif status is not RequestStatus.pending:
            return str(latest.id)
        await suspend_flow_run(wait_for_input=StageDecision, key=f"decision-{latest.id}-{attempt}", timeout=None)
    raise RuntimeError(f"request {request_id} still unsettled after {MAX_WAITS} resumes")


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
            await queue_resubmission_email(session, plan=plan, settings=settings, renderer=Renderer(),
                                           request=request, cycle=cycle, asked=asked)
    return asked is not None


@task(name="record-stage", retries=2, retry_delay_seconds=5)
async def record_stage(request_id: str) -> str:
    settings = get_settings()
    async with database(settings) as db, db.transaction() as session:
        status = await requests.record_stage_result(session, request_id=uuid.UUID(request_id), now=utcnow())
    return status.value


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
        return await queue_plain_messages(session, renderer=Renderer(), messages=messages,
                                          domain=mail_domain(settings))
