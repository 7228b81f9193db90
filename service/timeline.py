"""A request's timeline for coordinators: its stage, who was asked, every decision and every
audit row about it, with its flow runs in the Prefect UI."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from approvals import coordination
from approvals.clock.deadlines import clock_of, days_late
from approvals.db import utcnow
from approvals.errors import NotFound
from approvals.i18n import catalogue, local_time
from approvals.statuses import RequestStatus
from approvals.wording.presentation import agency_name, official_name, role_name
from service.api.auth import (
    Caller,
)
from service.api.present import cycle_name
from service.dashboard import flow_run_links, stage_name
from service.deps import App
from service.login import caller_or_login, coordinator_page, not_found_page
from service.web import MESSAGES, language_of

router = APIRouter(include_in_schema=False)


def _details(data: dict) -> str:
    """The audit row's data, shortly: scalars and lists of scalars."""
    parts = []
    for key, value in data.items():
        if value in (None, "", []):
            continue
        if isinstance(value, list):
            value = ", ".join(str(v.get("official", v)) if isinstance(v, dict) else str(v) for v in value)
        elif isinstance(value, dict):
            continue
        parts.append(f"{key}: {value}")
    return "; ".join(parts)


def _action_label(action: str, language: str) -> str:
    """The audit action in words, when the catalogue has them; else as recorded."""
    key = "dash.audit." + action
    texts = catalogue(MESSAGES)
    return texts.text(key, language) if key in texts.messages else action


@router.get("/requests/{request_id}")
async def timeline(request: Request, request_id: str, app: App):
    language = language_of(request, app.settings.default_language)
    caller = await caller_or_login(request, app, language)
    if not isinstance(caller, Caller):
        return caller
    _ = catalogue(MESSAGES).gettext_for(language)
    try:
        async with app.db.reads() as session:
            found = await coordination.history(session, uuid.UUID(request_id))
    except (ValueError, NotFound):
        return not_found_page(request, app, language, caller)
    plan, tz, r = app.plan, app.plan.tz, found.request
    clock = clock_of(plan, found.cycle)  # a rehearsal's steps are dated on its own calendar
    now = utcnow()
    status = "overdue" if r.status == RequestStatus.pending.value and r.due_at < now else r.status
    return coordinator_page(
        request,
        app,
        "dashboard_request.html",
        language,
        caller,
        cycle=cycle_name(plan, found.cycle.kind, found.cycle.period, language),
        stage=stage_name(plan, found.cycle, r.stage, language),
        subject=agency_name(plan, r.subject, language) if r.subject else "",
        agency=agency_name(plan, r.acting_agency, language),
        status=status,
        round=r.round,
        policy=r.policy,
        due=local_time(clock.dated(r.due_at), tz, language),
        days_late=days_late(clock.dated(r.due_at), clock.dated(now), tz) if status == "overdue" else 0,
        escalated=local_time(clock.dated(r.escalated_at), tz, language) if r.escalated_at else "",
        decided=local_time(clock.dated(r.decided_at), tz, language) if r.decided_at else "",
        runs=flow_run_links([r.waiter_ref] if r.waiter_ref else []),
        assignments=[
            {
                "name": official_name(plan, a.official_id),
                "on_behalf_of": official_name(plan, a.on_behalf_of) if a.on_behalf_of else "",
                "role": role_name(plan, a.role, language),
                "status": a.status,
                "since": local_time(clock.dated(a.created_at), tz, language),
            }
            for a in found.assignments
        ],
        decisions=[
            {
                "name": official_name(plan, d.official_id),
                "on_behalf_of": official_name(plan, d.on_behalf_of) if d.on_behalf_of else "",
                "outcome": d.outcome,
                "comment": d.comment,
                "at": local_time(clock.dated(d.decided_at), tz, language),
            }
            for d in found.decisions
        ],
        events=[
            {
                "at": local_time(clock.dated(e.at), tz, language),
                "actor": e.actor,
                "action": _action_label(e.action, language),
                "details": _details(e.data),
            }
            for e in found.audit
        ],
    )
