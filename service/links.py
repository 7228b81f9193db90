"""The approval link: GET shows the step and changes nothing; only the form's POST decides."""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request

from approvals import requests
from approvals.db import utcnow
from approvals.i18n import catalogue, local_time
from approvals.models import Cycle, Outcome
from approvals.plan import Plan
from notifications.outbox import Recipient, enqueue
from service.deps import App
from service.web import MESSAGES, language_of, render

log = logging.getLogger("kehoach.links")
router = APIRouter()


def _invalid(request: Request, language: str):
    _ = catalogue(MESSAGES).gettext_for(language)
    return render(request, "message.html", language, status_code=404,
                  title=_("invalid.title"), body=_("invalid.body"), switch_url=None)


def _names(plan: Plan, view: requests.LinkView, language: str) -> dict[str, str]:
    cycle_kind = plan.cycle(view.cycle.kind)
    stage = next(s for s in cycle_kind.stages if s.id == view.request.stage)
    return {
        "cycle_name": f"{cycle_kind.name.get(language)} {view.cycle.period}",
        "stage_name": f"{stage.number}. {stage.name.get(language)}",
        "summary": stage.summary.get(language) if stage.summary else "",
        "agency_name": plan.agency(view.request.acting_agency).name.get(language),
    }


async def _page(request: Request, app: App, token: str, *, language: str | None, status_code: int = 200,
                error: str = "", chosen: str = "", comment: str = ""):
    async with app.db.sessions() as session:
        try:
            view = await requests.view_link(session, token, now=utcnow())
        except requests.InvalidLink:
            return _invalid(request, language or app.settings.default_language)
    official = app.plan.official(view.assignment.official_id)
    language = language or (official.language.value if official else app.settings.default_language)
    others = []
    for other in view.others:
        person = app.plan.official(other.official_id)
        others.append({"name": person.name if person else other.official_id, "status": other.status})
    return render(
        request, "approval.html", language, status_code=status_code,
        official_name=official.name if official else view.assignment.official_id,
        role_name=app.plan.role(view.assignment.role).name.get(language),
        due=local_time(view.request.due_at, app.settings.tz, language),
        policy=view.request.policy, others=others, error=error, chosen=chosen, comment=comment,
        **_names(app.plan, view, language),
    )


@router.api_route("/a/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def show(request: Request, token: str, app: App):
    return await _page(request, app, token, language=request.query_params.get("lang") or None)


def _cross_site(request: Request, base_url: str) -> bool:
    """A POST that says it came from another site is refused (mail scanners and forged forms)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if origin and origin != "null":
        allowed = {_origin(base_url), _origin(str(request.base_url))}
        return origin.rstrip("/") not in allowed
    return False


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@router.post("/a/{token}", include_in_schema=False)
async def decide(
    request: Request,
    token: str,
    app: App,
    outcome: Annotated[str, Form()] = "",
    comment: Annotated[str, Form(max_length=20000)] = "",
    lang: Annotated[str, Form()] = "",
):
    language = lang if lang in ("vi", "en") else app.settings.default_language
    _ = catalogue(MESSAGES).gettext_for(language)
    if _cross_site(request, app.settings.public_base_url):
        return render(request, "message.html", language, status_code=403,
                      title=_("forbidden.title"), body=_("forbidden.body"), switch_url=None)
    try:
        choice = Outcome(outcome)
    except ValueError:
        return await _page(request, app, token, language=language, status_code=422,
                           error=_("error.choose_outcome"), comment=comment)
    if len(comment) > requests.MAX_COMMENT:
        return await _page(request, app, token, language=language, status_code=422,
                           error=_("error.comment_too_long"), chosen=outcome, comment="")
    now = utcnow()
    try:
        async with app.db.transaction() as session:
            result = await requests.decide(session, token=token, outcome=choice, comment=comment, now=now)
            await _queue_receipt(session, app, result, language, now)
    except requests.CommentRequired:
        return await _page(request, app, token, language=language, status_code=422,
                           error=_("error.comment_required"), chosen=outcome, comment=comment)
    except requests.InvalidLink:
        return _invalid(request, language)
    except requests.AlreadyDecided:
        return render(request, "message.html", language, status_code=409,
                      title=_("already.title"), body=_("already.body"), switch_url=None)
    if result.settled is not None:
        await app.resumer.resume(result.request)
    return render(request, "message.html", language, switch_url=None, title=_("done.title"),
                  body=_("done.body", outcome=_(f"outcome.{choice.value}"), at=local_time(now, app.settings.tz, language)))


async def _queue_receipt(session, app: App, result: requests.DecisionResult, language: str, now) -> None:
    """A short confirmation to the approver, so a decision they did not make gets noticed."""
    official = app.plan.official(result.decision.official_id)
    if official is None:
        return
    language = official.language.value
    cycle = await session.get(Cycle, result.request.cycle_id)
    cycle_kind = app.plan.cycle(cycle.kind)
    stage = next(s for s in cycle_kind.stages if s.id == result.request.stage)
    email = app.renderer.render(
        "receipt", language, stage=f"{stage.number}. {stage.name.get(language)}",
        cycle=f"{cycle_kind.name.get(language)} {cycle.period}", outcome=result.decision.outcome,
        at=local_time(now, app.settings.tz, language), comment=result.decision.comment,
    )
    await enqueue(session, idempotency_key=f"receipt:{result.decision.id}", kind="receipt",
                  to=[Recipient(official.name, str(official.email))], email=email, domain=app.mail_domain)
