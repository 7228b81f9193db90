"""The "Báo cáo vướng mắc" link: any official asked to act gets one for their own unit, in their
emails and on the pages they reach from them. It opens a form that raises a problem with the
PPC (the plan's problem-escalation cycle, which the service starts); only a unit in force on the
day may raise one. The link is signed, not stored, and works for a link lifetime, once per
problem; a bad or expired one gets the plain invalid-link page, and changes nothing."""

from __future__ import annotations

import datetime as dt
import logging

from fastapi import APIRouter, Request

from approvals import coordination
from approvals.clock.deadlines import local_day
from approvals.db import utcnow
from approvals.errors import Refused
from approvals.i18n import catalogue, local_time
from approvals.plan.people import Official
from approvals.plan.schema import Plan
from approvals.tokens import read_problem_token
from service.deps import App
from service.errors import invalid_link_page
from service.limits import web_limits
from service.links import MAX_FORM_FIELDS, clean_comment, form_field
from service.web import MESSAGES, known_language, refuse_cross_site, render

log = logging.getLogger("kehoach.problems")
router = APIRouter()
MAX_TITLE, MAX_DESCRIPTION = 300, 4000


def _official(app, token: str) -> Official | None:
    """The official a live problem link names: genuine, not expired, still in the directory."""
    read = read_problem_token(app.settings.link_secret_bytes(), token)
    if read is None:
        return None
    official_id, issued = read
    try:
        day = dt.datetime.strptime(issued, "%Y%m%d").date()
    except ValueError:
        return None
    today = local_day(app.plan, utcnow())
    if not day <= today <= day + dt.timedelta(days=app.settings.link_ttl_days):
        return None
    return app.plan.official(official_id)


def _gone(plan: Plan, official: Official, today: dt.date, language: str) -> tuple[str, str] | None:
    """(unit, why) when the official's unit is not in force today, else None."""
    agency = plan.agency(official.agency)
    if agency.valid_on(today):
        return None
    _ = catalogue(MESSAGES).gettext_for(language)
    heirs = [a.name.get(language) for a in plan.in_force(agency.id, today)]
    successors = _("problem.successors", names="; ".join(heirs)) if heirs else ""
    since = (agency.valid_to + dt.timedelta(days=1)).strftime("%d/%m/%Y") if agency.valid_to else ""
    return agency.name.get(language), _(
        "problem.not_in_force.body", unit=agency.name.get(language), since=since, successors=successors
    )


def _page(
    request: Request,
    app,
    official: Official,
    language: str,
    *,
    status_code: int = 200,
    error: str = "",
    title: str = "",
    description: str = "",
):
    today = local_day(app.plan, utcnow())
    gone = _gone(app.plan, official, today, language)
    _ = catalogue(MESSAGES).gettext_for(language)
    if gone is not None:
        return render(
            request,
            "message.html",
            language,
            status_code=409,
            switch_url=None,
            title=_("problem.not_in_force.title"),
            body=gone[1],
        )
    stage = (
        app.plan.cycle("problem_escalation").stages[0]
        if any(c.id == "problem_escalation" for c in app.plan.cycles)
        else None
    )
    deciders = [o.name for role in (stage.approvers if stage else []) for o in app.plan.holders(role, today)]
    return render(
        request,
        "problem.html",
        language,
        status_code=status_code,
        error=error,
        title=title,
        description=description,
        official_name=official.name,
        unit=app.plan.agency(official.agency).name.get(language),
        to=", ".join([app.plan.agency(app.plan.plan.issuer).name.get(language), *deciders]),
    )


@router.api_route("/p/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def show(request: Request, token: str, app: App):
    official = _official(app, token)
    language = known_language(request.query_params.get("lang")) or (
        official.language.value if official else app.settings.default_language
    )
    if official is None:
        return invalid_link_page(request, language)
    return _page(request, app, official, language)


@router.post("/p/{token}", include_in_schema=False)
async def raise_problem(request: Request, token: str, app: App):
    language = known_language(request.query_params.get("lang")) or app.settings.default_language
    _ = catalogue(MESSAGES).gettext_for(language)
    if refused := refuse_cross_site(request, app.settings.public_base_url, language):
        return refused
    official = _official(app, token)
    if official is None:
        return invalid_link_page(request, language)
    form = await request.form(
        max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=web_limits(request).max_field_bytes
    )
    language = known_language(form_field(form, "lang")) or language
    _ = catalogue(MESSAGES).gettext_for(language)
    title = " ".join(clean_comment(form_field(form, "title")).split())
    description = clean_comment(form_field(form, "description")).strip()
    if not title or len(title) > MAX_TITLE or not description or len(description) > MAX_DESCRIPTION:
        return _page(
            request,
            app,
            official,
            language,
            status_code=422,
            error=_("error.problem"),
            title=title[:MAX_TITLE],
            description=description[:MAX_DESCRIPTION],
        )
    now = utcnow()
    try:
        async with app.db.transaction() as session:
            problem = await coordination.record_problem(
                session,
                plan=app.plan,
                title=title,
                description=description,
                unit=official.agency,
                by=f"official:{official.id}",
                now=now,
            )
    except Refused as exc:  # the unit ended between the page and the form (or a stale link)
        log.info("problem refused: %s", exc)
        return _page(request, app, official, language)
    unit = app.plan.agency(official.agency).name.get(language)
    return render(
        request,
        "message.html",
        language,
        switch_url=None,
        title=_("problem.done.title"),
        body=_("problem.done.body", title=problem.title, unit=unit, at=local_time(now, app.plan.tz, language)),
    )
