"""The sweep as a scheduled flow: reminders, escalations and expiries, with their emails."""

from __future__ import annotations

import datetime as dt

from prefect import flow
from prefect.logging import get_run_logger
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.config import Settings, get_settings
from approvals.db import Database, utcnow
from approvals.plan import Plan, load_plan
from approvals.sweep import EventKind, SweepEvent, sweep
from flows.emails import queue_link_emails
from flows.stages import database
from notifications.render import Renderer

LINK_EMAIL_FOR = {EventKind.reminder: "reminder", EventKind.escalation: "escalation"}


async def sweep_with_emails(db: Database, *, plan: Plan, settings: Settings, renderer: Renderer,
                            now: dt.datetime | None = None) -> list[SweepEvent]:
    """One pass; each request's change and its emails commit together."""

    async def on_event(session: AsyncSession, event: SweepEvent) -> None:
        kind = LINK_EMAIL_FOR.get(event.kind)
        if kind and event.notify:
            await queue_link_emails(session, kind=kind, plan=plan, settings=settings, renderer=renderer,
                                    request=event.request, cycle=event.cycle, notify=event.notify)

    return await sweep(db, plan=plan, secret=settings.link_secret_bytes(), now=now or utcnow(),
                       link_ttl=dt.timedelta(days=settings.link_ttl_days), on_event=on_event)


@flow(name="sweep", log_prints=True)
async def sweep_flow() -> dict[str, int]:
    """Send reminders, escalate overdue steps and apply timeout policies (never approving anything)."""
    settings = get_settings()
    async with database(settings) as db:
        events = await sweep_with_emails(db, plan=load_plan(settings.plan_file), settings=settings,
                                         renderer=Renderer())
    counts = {kind.value: sum(1 for e in events if e.kind is kind) for kind in EventKind}
    get_run_logger().info("sweep: %s", counts)
    return counts
