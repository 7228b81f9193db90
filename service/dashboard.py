"""The coordinators' dashboard: cycles by year with each stage's progress, the overdue list,
and the annual report of every unit against its deadline. The login is `service.login`; a
request's timeline is `service.timeline`.

Every page needs a login: an API token as a bearer header, or the session cookie set
by the login form. Pages read only; actions go through the API.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections import defaultdict

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from approvals import coordination
from approvals.clock.deadlines import clock_of, days_late
from approvals.db import utcnow
from approvals.errors import NotFound
from approvals.i18n import catalogue, local_time
from approvals.models import Cycle
from approvals.plan import Plan
from approvals.plan.stages import Cadence, StageKind
from approvals.running import cycles
from approvals.statuses import RequestStatus
from approvals.wording.presentation import agency_name, official_name
from notifications.channel_health import ChannelHealth, channel_health
from service import reports
from service.api.auth import (
    Caller,
)
from service.api.present import cycle_name, stages_read
from service.deps import App
from service.login import NO_STORE, caller_or_login, coordinator_page, lang_query, not_found_page
from service.report_card import report_card
from service.web import MESSAGES, cross_site, language_of

router = APIRouter(include_in_schema=False)


def prefect_ui_url() -> str | None:
    """PREFECT_UI_URL, else the API's address without its /api suffix."""
    ui = os.environ.get("PREFECT_UI_URL", "").strip()
    if ui:
        return ui.rstrip("/")
    api = os.environ.get("PREFECT_API_URL", "").strip().rstrip("/")
    return api.removesuffix("/api") or None


def flow_run_links(refs: list[str]) -> list[dict[str, str]]:
    base = prefect_ui_url()
    links = []
    for ref in refs:
        try:
            run_id = str(uuid.UUID(ref))
        except ValueError:
            continue
        links.append({"id": run_id[:8], "url": f"{base}/runs/flow-run/{run_id}" if base else ""})
    return links


def stage_name(plan: Plan, cycle: Cycle, stage_id: str, language: str) -> str:
    stage = plan.stage(cycle.kind, stage_id)
    return f"{stage.number}. {stage.name.get(language)}" if stage else stage_id


def implementation_cycles(plan: Plan, views: list[coordination.CycleView], language: str) -> list[dict]:
    """The implementation period's own cycles (the kinds that carry content areas at a monthly
    or per-event cadence), each kind with how many of its cycles there are and how many are open."""
    shown = []
    for kind in plan.cycles:
        if kind.cadence is Cadence.yearly or not kind.content_areas:
            continue
        of_kind = [v for v in views if v.cycle.kind == kind.id]
        still_open = [v for v in of_kind if v.cycle.finished_at is None and v.cancelled_at is None]
        shown.append({"kind": kind.name.get(language), "count": len(of_kind), "open": len(still_open)})
    return shown


def _cycles_by_year(plan: Plan, views: list[coordination.CycleView], language: str) -> list[tuple[str, list[dict]]]:
    years: dict[str, list[dict]] = defaultdict(list)
    for view in views:
        stages = []
        for stage in stages_read(plan, view, language):
            planned = plan.stage(view.cycle.kind, stage.stage)
            period = planned is not None and planned.kind is StageKind.implementation
            percent = (
                100
                if stage.status == "done"
                else (round(100 * stage.requests_settled / stage.requests_total) if stage.requests_total else 0)
            )
            stages.append(
                {
                    "number": stage.number,
                    "name": stage.name,
                    "status": stage.status,
                    "percent": percent,
                    "settled": stage.requests_settled,
                    "total": stage.requests_total,
                    "overdue": stage.requests_overdue,
                    "implementation": implementation_cycles(plan, views, language) if period else None,
                }
            )
        year = view.cycle.period[:4] if view.cycle.period[:4].isdigit() else ""  # "": other periods
        years[year].append(
            {
                "name": cycle_name(plan, view.cycle.kind, view.cycle.period, language),
                "stages": stages,
                "runs": flow_run_links(view.flow_runs),
                "cancelled": local_time(view.cancelled_at, plan.tz, language) if view.cancelled_at else "",
            }
        )
    return sorted(years.items(), key=lambda item: item[0], reverse=True)


def _overdue(plan: Plan, views: list[coordination.RequestView], now: dt.datetime, language: str) -> list[dict]:
    tz = plan.tz
    rows = []
    for v in sorted(views, key=lambda v: v.request.due_at):
        clock = clock_of(plan, v.cycle)
        rows.append(
            {
                "id": str(v.request.id),
                "cycle": cycle_name(plan, v.cycle.kind, v.cycle.period, language),
                "stage": stage_name(plan, v.cycle, v.request.stage, language),
                "subject": agency_name(plan, v.request.subject, language) if v.request.subject else "",
                "agency": agency_name(plan, v.request.acting_agency, language),
                "due": local_time(clock.dated(v.request.due_at), tz, language),
                "days_late": days_late(clock.dated(v.request.due_at), clock.dated(now), tz),
                "waiting_on": [official_name(plan, o) for o in v.waiting_on],
                "escalated": v.request.escalated_at is not None,
            }
        )
    return rows


def _unrouted(plan: Plan, views: list[coordination.RequestView], language: str) -> list[dict]:
    tz = plan.tz
    return [
        {
            "id": str(v.request.id),
            "reason": "submission_unrouted"
            if v.request.status == RequestStatus.awaiting_submission.value
            else "resubmission_unrouted",
            "cycle": cycle_name(plan, v.cycle.kind, v.cycle.period, language),
            "stage": stage_name(plan, v.cycle, v.request.stage, language),
            "subject": agency_name(plan, v.request.subject or v.request.acting_agency, language),
            "due": local_time(v.request.due_at, tz, language),
        }
        for v in views
    ]


@router.get("/")
async def overview(request: Request, app: App):
    language = language_of(request, app.settings.default_language)
    caller = await caller_or_login(request, app, language)
    if not isinstance(caller, Caller):
        return caller
    now = utcnow()
    try:
        year = int(request.query_params.get("year", ""))
    except ValueError:
        year = now.astimezone(app.plan.tz).year
    year = min(max(year, 2000), 2100)
    async with app.db.reads() as session:
        views = await coordination.cycles(session, now=now, year=year)  # the year shown, not every year
        overdue = await coordination.find_requests(session, now=now, overdue=True, limit=200)
        unrouted = await coordination.unrouted_steps(session)
        stopped = await cycles.needing_attention(session)
        restarts = await cycles.latest_restarts(session, [c.id for c in stopped])
        report = await report_card(session, app.plan, year, now, language)
        channels = await channel_health(session, now)
    notice = request.query_params.get("notice", "")
    return coordinator_page(
        request,
        app,
        "dashboard.html",
        language,
        caller,
        years=_cycles_by_year(app.plan, views, language),
        overdue=_overdue(app.plan, overdue, now, language),
        attention=_unrouted(app.plan, unrouted, language),
        stopped=[
            {
                "id": str(c.id),
                "name": cycle_name(app.plan, c.kind, c.period, language),
                "reason": c.attention,
                "detail": c.attention_detail,
                "since": local_time(c.attention_at, app.plan.tz, language) if c.attention_at else "",
                "restart": _restart_line(restarts.get(c.id), c, app, language),
            }
            for c in stopped
        ],
        notice=notice if notice in NOTICES else "",
        report=report,
        channels=_channels(channels),
        rehearsal=any(view.cycle.rehearsal_speed for view in views),
        rehearsal_day=rehearsal_day(app.plan, [view.cycle for view in views], utcnow()),
        year=year,
    )


NOTICES = ("resume_asked", "resume_refused")


def _channels(health: ChannelHealth) -> list[dict]:
    """Each phone channel that has messages: how many were sent, wait, failed; and whether it is failing."""
    failing = {f.channel: f for f in health.failing}
    return [
        {
            "name": channel,
            "sent": health.messages.get((channel, "sent"), 0),
            "delivered": health.deliveries.get((channel, "delivered"), 0),
            "queued": health.messages.get((channel, "queued"), 0) + health.messages.get((channel, "sending"), 0),
            "failed": health.messages.get((channel, "failed"), 0),
            "failing": failing.get(channel),
        }
        for channel in sorted({channel for channel, _ in health.messages})
    ]


def _restart_line(wake, cycle, app, language: str) -> dict | None:
    """The latest restart asked since the cycle stopped: waiting (with Prefect's last answer), or
    refused and why; None when none was asked since."""
    if wake is None or (cycle.attention_at and wake.created_at < cycle.attention_at) or wake.status == "done":
        return None
    return {
        "status": "parked" if wake.status == "parked" else "queued",
        "at": local_time(wake.created_at, app.plan.tz, language),
        "detail": wake.last_error,
    }


@router.post("/cycles/{cycle_id}/resume")
async def resume_from_dashboard(request: Request, cycle_id: str, app: App):
    """The dashboard's "Resume the cycle" button: what `POST /api/v1/cycles/{id}/resume` does,
    for a coordinator signed in (a viewer is refused): the restart is queued and the page comes
    back at once, whether Prefect answers or not; the list says how it went."""
    language = language_of(request, app.settings.default_language)
    caller = await caller_or_login(request, app, language)
    if not isinstance(caller, Caller):
        return caller
    _ = catalogue(MESSAGES).gettext_for(language)
    if cross_site(request, app.settings.public_base_url) or not caller.can_act:
        return coordinator_page(
            request,
            app,
            "message.html",
            language,
            caller,
            status_code=403,
            title=_("dash.forbidden.title"),
            body=_("dash.forbidden.body"),
        )
    try:
        async with app.db.transaction() as session:
            await cycles.ask_restart(session, uuid.UUID(cycle_id), by=caller.actor, force=False, now=utcnow())
        notice = "resume_asked"
    except (ValueError, NotFound):  # not a UUID, or no such cycle
        return not_found_page(request, app, language, caller)
    except cycles.NotRestartable:
        notice = "resume_refused"
    query = lang_query(language, app)
    return RedirectResponse(
        "/" + (query + "&" if query else "?") + f"notice={notice}", status_code=303, headers=NO_STORE
    )


# The year's annual reports -----------------------------------------------------------------


def report_year(year: str) -> int | None:
    """A year in a report's path, or None (the page answers 404) when it is not one."""
    return int(year) if year.isdigit() and 2000 <= int(year) <= 2100 else None


@router.get("/reports/annual/{year}")
async def annual_report_file(request: Request, year: str, app: App):
    """The year's consolidated report as it stands (a draft), DOCX or PDF, for a signed-in coordinator."""
    language = language_of(request, app.settings.default_language)
    caller = await caller_or_login(request, app, language)
    if not isinstance(caller, Caller):
        return caller
    fmt = request.query_params.get("format", "pdf")
    if (shown := report_year(year)) is None or fmt not in reports.FORMATS:
        return not_found_page(request, app, language, caller)
    file = await reports.annual_report_file(app, shown, fmt)
    return Response(file.data, media_type=file.media_type, headers={"Content-Disposition": file.disposition})


@router.get("/reports/annual/{year}/units")
async def annual_report_units(request: Request, year: str, app: App):
    """Every unit's annual report of a year, against the step's own dates (one click from the overview)."""
    language = language_of(request, app.settings.default_language)
    caller = await caller_or_login(request, app, language)
    if not isinstance(caller, Caller):
        return caller
    if (shown := report_year(year)) is None:
        return not_found_page(request, app, language, caller)
    async with app.db.reads() as session:
        card = await report_card(session, app.plan, shown, utcnow(), language)
    if card is None:
        return not_found_page(request, app, language, caller)
    clock = card["clock"]
    try:
        signed = await reports.issued_signatures(app, shown)
    except NotFound:
        signed = None  # not issued yet
    asked = None
    if signed is None:  # perhaps waiting on the director's phone
        async with app.db.reads() as session:
            asked = await reports.signature_asked(session, shown)
    return coordinator_page(
        request,
        app,
        "report_units.html",
        language,
        caller,
        report=card,
        signed=signed,
        asked=asked
        and {
            "status": asked.status,
            "signer": official_name(app.plan, asked.signer),
            "requested": local_time(asked.requested_at, app.plan.tz, language),
            "expires": local_time(asked.expires_at, app.plan.tz, language),
            "detail": asked.detail,
        },
        rehearsal=clock.rehearsal,
        rehearsal_day=f"{clock.planned(utcnow()).astimezone(app.plan.tz):%d/%m/%Y}" if clock.rehearsal else "",
    )


def rehearsal_day(plan: Plan, shown: list[Cycle], now: dt.datetime) -> str:
    """Today on the calendar of the first rehearsal among the cycles shown ("" where none is one)."""
    for cycle in shown:
        clock = clock_of(plan, cycle)
        if clock.rehearsal:
            return f"{clock.planned(now).astimezone(plan.tz):%d/%m/%Y}"
    return ""
