"""The sweep as a scheduled flow: reminders, escalations and expiries, with their emails."""

from __future__ import annotations

import datetime as dt

from prefect import flow
from prefect.logging import get_run_logger
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.config import Settings, get_settings
from approvals.consolidated.remote_director import poll_remote_signatures
from approvals.db import Database, utcnow
from approvals.plan import Plan, load_plan
from approvals.routing.stages import due_goings_on, due_openings
from approvals.running.digests import daily_digests
from approvals.running.sweep import EventKind, SweepEvent, overdue_notices, sweep
from approvals.signing.signers import signers_for
from flows.stages import database
from notifications.emails import Emails
from notifications.outbox import failed_messages
from notifications.render import Renderer, shared_renderer

LINK_EMAIL_FOR = {EventKind.reminder: "reminder", EventKind.escalation: "escalation"}


async def sweep_with_emails(
    db: Database, *, plan: Plan, settings: Settings, renderer: Renderer, now: dt.datetime | None = None
) -> list[SweepEvent]:
    """One pass; each request's change and its emails commit together."""
    emails = Emails.of(plan, settings, renderer)

    async def on_event(session: AsyncSession, event: SweepEvent) -> None:
        kind = LINK_EMAIL_FOR.get(event.kind)
        if event.submission is not None:
            await emails.submission_link(
                session, event.request, event.cycle, event.submission, reminder=event.request.reminders_sent
            )
        if kind and event.notify:
            await emails.approval_links(session, event.request, event.cycle, event.notify, kind=kind)
        if event.kind is EventKind.expired:
            await emails.expired(session, event.request, event.cycle, event.closed)

    events = await sweep(
        db,
        plan=plan,
        secret=settings.link_secret_bytes(),
        now=now or utcnow(),
        link_ttl=dt.timedelta(days=settings.link_ttl_days),
        on_event=on_event,
    )
    async with db.transaction() as session:  # open steps past their due time: each stage's superior hears once
        notices = await overdue_notices(session, plan=plan, now=now or utcnow())
        await emails.overdue(session, notices)
    if settings.digest:  # each official's open steps, once a day from the morning (the key: official and day)
        async with db.transaction() as session:
            digests = await daily_digests(session, plan=plan, now=now or utcnow(), hour=settings.digest_hour)
            await emails.daily_digests(session, digests, now=now or utcnow())
    async with db.transaction() as session:
        await due_openings(session, now=now or utcnow())  # stages whose own date has come: wake their runs
        await due_goings_on(session, now=now or utcnow())  # stages the chain leaves at their due time
    # Directors' signatures asked on the phone (every web process polls them too): answered, wake the run.
    await poll_remote_signatures(db, signers=lambda: signers_for(settings, plan), now=now)
    async with db.transaction() as session:
        # Coordinators hear of every email that could not be delivered, once per set of failures.
        await emails.delivery_failures(session, await failed_messages(session), at=now or utcnow())
    return events


@flow(name="sweep", log_prints=True)
async def sweep_flow() -> dict[str, int]:
    """Send reminders, escalate overdue steps and apply timeout policies (never approving anything)."""
    settings = get_settings()
    async with database(settings) as db:
        events = await sweep_with_emails(
            db, plan=load_plan(settings.plan_file), settings=settings, renderer=shared_renderer()
        )
    counts = {kind.value: sum(1 for e in events if e.kind is kind) for kind in EventKind}
    get_run_logger().info("sweep: %s", counts)
    return counts
