"""The sweep as a scheduled flow: reminders, escalations and expiries, with their emails."""

from __future__ import annotations

import datetime as dt
import hashlib

from prefect import flow
from prefect.logging import get_run_logger
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.config import Settings, get_settings
from approvals.db import Database, utcnow
from approvals.i18n import local_time
from approvals.plan import Plan, load_plan
from approvals.presentation import PlainMessage, closed_messages, coordinators, outcome_message, overdue_messages
from approvals.stages import due_goings_on, due_openings
from approvals.sweep import EventKind, SweepEvent, overdue_notices, sweep
from flows.emails import mail_domain, queue_link_emails, queue_submission_email
from flows.stages import database
from notifications.links import queue_closing_messages, queue_plain_messages
from notifications.outbox import failed_messages
from notifications.render import Renderer, shared_renderer

LINK_EMAIL_FOR = {EventKind.reminder: "reminder", EventKind.escalation: "escalation"}


async def sweep_with_emails(db: Database, *, plan: Plan, settings: Settings, renderer: Renderer,
                            now: dt.datetime | None = None) -> list[SweepEvent]:
    """One pass; each request's change and its emails commit together."""

    async def on_event(session: AsyncSession, event: SweepEvent) -> None:
        kind = LINK_EMAIL_FOR.get(event.kind)
        if event.submission is not None:
            await queue_submission_email(session, plan=plan, settings=settings, renderer=renderer,
                                         request=event.request, cycle=event.cycle, asked=event.submission,
                                         reminder=event.request.reminders_sent)
        if kind and event.notify:
            await queue_link_emails(session, kind=kind, plan=plan, settings=settings, renderer=renderer,
                                    request=event.request, cycle=event.cycle, notify=event.notify)
        if event.kind is EventKind.expired:
            told = outcome_message(plan, event.request, event.cycle, decided_by="", comment="",
                                   at=event.request.decided_at or utcnow(), tz=settings.tz,
                                   base_url=settings.public_base_url)
            await queue_plain_messages(session, renderer=renderer, messages=[told] if told else [],
                                       domain=mail_domain(settings))
            await queue_closing_messages(
                session, renderer=renderer, domain=mail_domain(settings), organizer=settings.organizer,
                messages=closed_messages(plan, event.request, event.cycle, event.closed, decided_by="",
                                         at=event.request.decided_at or utcnow(), tz=settings.tz))

    events = await sweep(db, plan=plan, secret=settings.link_secret_bytes(), now=now or utcnow(),
                         link_ttl=dt.timedelta(days=settings.link_ttl_days), on_event=on_event)
    async with db.transaction() as session:  # open steps past their due time: each stage's superior hears once
        notices = await overdue_notices(session, plan=plan, now=now or utcnow())
        await queue_plain_messages(session, renderer=renderer, domain=mail_domain(settings), messages=[
            message for notice in notices for message in overdue_messages(plan, notice, tz=settings.tz)])
    async with db.transaction() as session:
        await due_openings(session, now=now or utcnow())  # stages whose own date has come: wake their runs
        await due_goings_on(session, now=now or utcnow())  # stages the chain leaves at their due time
        await alert_delivery_failures(session, plan=plan, settings=settings, renderer=renderer, now=now or utcnow())
    return events


async def alert_delivery_failures(session: AsyncSession, *, plan: Plan, settings: Settings, renderer: Renderer,
                                  now: dt.datetime) -> int:
    """Coordinators hear of every email that could not be delivered, once per set of failures."""
    failed = await failed_messages(session)
    if not failed:
        return 0
    fingerprint = hashlib.sha256(",".join(sorted(str(m.id) for m in failed)).encode()).hexdigest()[:32]
    messages = []
    for person in coordinators(plan, now, settings.tz):
        language = person.language.value
        messages.append(PlainMessage(
            kind="delivery_failure", key=f"delivery_failure:{fingerprint}:{person.id}", language=language,
            name=person.name, email=str(person.email),
            context={"title": person.title.get(language), "name": person.name, "count": str(len(failed)),
                     "failures": [{"recipient": ", ".join(r["email"] for r in m.recipients), "subject": m.subject,
                                   "error": (m.last_error or "")[:300],
                                   "at": local_time(m.created_at, settings.tz, language)} for m in failed],
                     "link": f"{settings.public_base_url.rstrip('/')}/"}))
    return await queue_plain_messages(session, renderer=renderer, messages=messages, domain=mail_domain(settings))


@flow(name="sweep", log_prints=True)
async def sweep_flow() -> dict[str, int]:
    """Send reminders, escalate overdue steps and apply timeout policies (never approving anything)."""
    settings = get_settings()
    async with database(settings) as db:
        events = await sweep_with_emails(db, plan=load_plan(settings.plan_file), settings=settings,
                                         renderer=shared_renderer())
    counts = {kind.value: sum(1 for e in events if e.kind is kind) for kind in EventKind}
    get_run_logger().info("sweep: %s", counts)
    return counts
