"""The official's queue ("Việc chờ đồng chí"): every open step of theirs on one light page, and
decisions in bulk. Reached from any live approval link (`POST /a/{token}/queue`) or from the daily
digest's queue link (`/q/{token}`: its GET shows a button, its POST opens the queue); the session
is `service.queue_session`'s. A bulk decision is one confirmation page, then each step decided in
its own transaction through the page's decision code (`decisions.decide`, audit channel "queue")
and its emails (`Emails.decided`): not all-or-nothing, each step answered for."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from starlette.exceptions import HTTPException

from approvals.db import utcnow
from approvals.errors import InvalidLink, Refused
from approvals.i18n import catalogue
from approvals.models import ApprovalRequest, Assignment, Cycle
from approvals.plan.people import Official
from approvals.routing import decisions, steps
from approvals.routing.decisions import Queued
from approvals.routing.queue import OpenStep, QueueFilter, chosen, open_steps
from approvals.statuses import Outcome
from notifications.deciding import decide_and_tell
from service import queue_views as views
from service.deps import App
from service.limits import web_limits
from service.links import clean_comment, form_field
from service.queue_session import QUEUE_PATH, session_official
from service.web import MESSAGES, known_language, refuse_cross_site, render

router = APIRouter(include_in_schema=False)

MAX_BULK = 100  # steps decided by one confirmation
MAX_FIELDS = 2 * MAX_BULK + 16  # each step's id and its own comment, and the form's own fields
NEEDS_COMMENT = (Outcome.reject, Outcome.request_changes)


def _language(request: Request, app, official: Official | None, form=None) -> str:
    return (
        known_language(form_field(form, "lang") if form is not None else None)
        or known_language(request.query_params.get("lang"))
        or (official.language.value if official else app.settings.default_language)
    )


def _lapsed(request: Request, language: str):
    """A queue reached without a live session (lapsed, forged, tampered, or none): nothing is
    shown or changed, and the official is told how to open it again."""
    _ = catalogue(MESSAGES).gettext_for(language)
    return render(
        request,
        "message.html",
        language,
        status_code=401,
        title=_("queue.lapsed.title"),
        body=_("queue.lapsed.body"),
        switch_url=None,
    )


# The queue --------------------------------------------------------------------------------------


async def _open_steps(app, official: Official, now: dt.datetime) -> list[OpenStep]:
    async with app.db.reads() as session:
        return await open_steps(session, official_id=official.id, now=now)


def _queue_page(
    request: Request,
    app,
    official: Official,
    everything: list[OpenStep],
    shown_filter: QueueFilter,
    language: str,
    *,
    now: dt.datetime,
    checked: set[uuid.UUID] | None = None,
    all_checked: bool = False,
    status_code: int = 200,
    error: str = "",
    outcome: str = "",
    comment: str = "",
    results: list[dict] | None = None,
):
    shown = [step for step in everything if shown_filter.keeps(step, now)]
    ticked = {step.assignment.id for step in shown} if all_checked else (checked or set())
    query = views.filter_query(shown_filter)
    return render(
        request,
        "queue.html",
        language,
        status_code=status_code,
        switch_url=f"{QUEUE_PATH}?{views.filter_query(shown_filter, 'en' if language == 'vi' else 'vi')}",
        official_name=official.name,
        total=len(everything),
        count=len(shown),
        overdue_count=sum(step.overdue(now) for step in everything),
        groups=views.groups(
            app.plan, shown, secret=app.settings.link_secret_bytes(), checked=ticked, now=now, language=language
        ),
        facets=views.facets(app.plan, everything, shown_filter, language),
        chosen=shown_filter,
        select_all_url=f"{QUEUE_PATH}?{views.filter_query(shown_filter, None, chon='tat-ca')}",
        clear_url=f"{QUEUE_PATH}?{query}",
        any_acknowledged=any(views.acknowledged(app.plan, step) for step in shown),
        all_acknowledged=bool(shown) and all(views.acknowledged(app.plan, step) for step in shown),
        outcome=outcome,
        comment=comment,
        error=error,
        results=results or [],
        results_done=sum(r["result"] == views.DONE for r in results or []),
        max_comment=decisions.MAX_COMMENT,
    )


@router.api_route(QUEUE_PATH, methods=["GET", "HEAD"])
async def queue(request: Request, app: App):
    """The official's open steps, filtered (cycle, stage, unit, overdue). Changes nothing."""
    official = session_official(request, app)
    language = _language(request, app, official)
    if official is None:
        return _lapsed(request, language)
    now = utcnow()
    return _queue_page(
        request,
        app,
        official,
        await _open_steps(app, official, now),
        views.read_filter(request.query_params),
        language,
        now=now,
        all_checked=request.query_params.get("chon") == "tat-ca",
    )


async def _form(request: Request):
    limits = web_limits(request)
    try:
        return await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=limits.max_field_bytes)
    except HTTPException as exc:
        if exc.status_code == 413:
            raise
        return None


@dataclass(frozen=True)
class _Posted:
    official: Official
    form: Any
    language: str


async def _posted(request: Request, app) -> _Posted | Response:
    """A POST of the queue's forms, checked as each one is: from this site, in a live session,
    its form read; else the answer to give (cross-site, lapsed, bad request)."""
    official = session_official(request, app)
    language = _language(request, app, official)
    if refused := refuse_cross_site(request, app.settings.public_base_url, language):
        return refused
    if official is None:
        return _lapsed(request, language)
    form = await _form(request)
    if form is None:
        return _bad_request(request, language)
    return _Posted(official, form, _language(request, app, official, form))


def _bad_request(request: Request, language: str):
    _ = catalogue(MESSAGES).gettext_for(language)
    title, body = _("bad_request.title"), _("bad_request.body")
    return render(request, "message.html", language, status_code=400, title=title, body=body, switch_url=None)


def _ids(form) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    for value in form.getlist("b"):
        try:
            step_id = uuid.UUID(value) if isinstance(value, str) else None
        except ValueError:
            step_id = None
        if step_id is not None and step_id not in ids:
            ids.append(step_id)
    return ids


@router.post(QUEUE_PATH + "/xac-nhan")
async def confirm(request: Request, app: App):
    """The one confirmation of a bulk decision: the steps' titles and their count, the outcome,
    the shared comment and a comment per step. Changes nothing."""
    posted = await _posted(request, app)
    if not isinstance(posted, _Posted):
        return posted
    official, form, language = posted.official, posted.form, posted.language
    _ = catalogue(MESSAGES).gettext_for(language)
    now = utcnow()
    everything = await _open_steps(app, official, now)
    shown_filter = views.read_filter(form)
    ids = _ids(form)
    picked = chosen(everything, ids)
    comment = clean_comment(form_field(form, "comment"))[: decisions.MAX_COMMENT]
    outcome = form_field(form, "outcome")
    error = ""
    if not picked:
        error = _("queue.error.choose_steps")
    elif len(picked) > MAX_BULK:
        error = _("queue.error.too_many", n=MAX_BULK)
    elif outcome not in {o.value for o in Outcome}:
        error = _("error.choose_outcome")
    elif outcome == Outcome.reject.value and any(views.acknowledged(app.plan, step) for step in picked):
        error = _("queue.error.acknowledge_only")
    if error:
        return _queue_page(
            request,
            app,
            official,
            everything,
            shown_filter,
            language,
            now=now,
            checked={step.assignment.id for step in picked},
            status_code=422,
            error=error,
            outcome=outcome,
            comment=comment,
        )
    return _confirm_page(request, app, picked, Outcome(outcome), comment, shown_filter, language)


def _confirm_page(
    request: Request,
    app,
    picked: list[OpenStep],
    outcome: Outcome,
    comment: str,
    shown_filter: QueueFilter,
    language: str,
    *,
    own: dict[str, str] | None = None,
    status_code: int = 200,
    error: str = "",
):
    items = [
        {
            "id": str(step.assignment.id),
            "title": views.title_of(app.plan, step, language),
            "word": _word(app, step, outcome),
            "comment": (own or {}).get(str(step.assignment.id), ""),
        }
        for step in picked
    ]
    return render(
        request,
        "queue_confirm.html",
        language,
        status_code=status_code,
        switch_url=None,
        items=items,
        count=len(items),
        outcome=outcome.value,
        comment=comment,
        needs_comment=outcome in NEEDS_COMMENT,
        filters=shown_filter,
        back_url=f"{QUEUE_PATH}?{views.filter_query(shown_filter)}",
        error=error,
        max_comment=decisions.MAX_COMMENT,
    )


def _word(app, step: OpenStep, outcome: Outcome) -> str:
    """The outcome as the step's page names it (an acknowledged stage: Tiếp nhận, Đề nghị làm rõ)."""
    if views.acknowledged(app.plan, step):
        return {"approve": "acknowledge", "request_changes": "clarify"}.get(outcome.value, outcome.value)
    return outcome.value


def _comment_of(shared: str, own: str) -> str:
    """The shared comment, then the step's own (either may be empty)."""
    return "\n\n".join(part for part in (shared.strip(), own.strip()) if part)


@router.post(QUEUE_PATH + "/quyet-dinh")
async def decide_all(request: Request, app: App):
    """Each confirmed step decided in its own transaction, as the approval page's POST decides one;
    the answer is the queue again, each step's result listed and the ones that failed still ticked."""
    posted = await _posted(request, app)
    if not isinstance(posted, _Posted):
        return posted
    official, form, language = posted.official, posted.form, posted.language
    _ = catalogue(MESSAGES).gettext_for(language)
    ids = _ids(form)[:MAX_BULK]
    shared_filter = views.read_filter(form)
    try:
        outcome = Outcome(form_field(form, "outcome"))
    except ValueError:
        return _bad_request(request, language)
    shared = clean_comment(form_field(form, "comment"))
    own = {str(i): clean_comment(form_field(form, f"c-{i}")) for i in ids}
    comments = {i: _comment_of(shared, own[str(i)]) for i in ids}
    missing = outcome in NEEDS_COMMENT and any(not comments[i] for i in ids)
    too_long = any(len(text) > decisions.MAX_COMMENT for text in comments.values())
    if not ids or missing or too_long:  # nothing is decided: the confirmation again, with why
        everything = await _open_steps(app, official, utcnow())
        return _confirm_page(
            request,
            app,
            chosen(everything, ids),
            outcome,
            shared[: decisions.MAX_COMMENT],
            shared_filter,
            language,
            own=own,
            status_code=422,
            error=_("error.comment_required") if missing else _("error.comment_too_long"),
        )
    titles = await _titles(app, official, ids, language)
    results = []
    for step_id in ids:
        result = await _decide_one(app, official, step_id, outcome, comments[step_id])
        results.append({"id": str(step_id), "title": titles.get(step_id, _("queue.not_yours_title")), "result": result})
    now = utcnow()
    failed = {uuid.UUID(r["id"]) for r in results if r["result"] != views.DONE}
    return _queue_page(
        request,
        app,
        official,
        await _open_steps(app, official, now),
        shared_filter,
        language,
        now=now,
        checked=failed,
        outcome=outcome.value if failed else "",
        comment=shared if failed else "",
        results=results,
    )


async def _titles(app, official: Official, ids: list[uuid.UUID], language: str) -> dict[uuid.UUID, str]:
    """The titles of the official's own steps among `ids` (another's step is never named)."""
    async with app.db.reads() as session:
        rows = await session.execute(
            select(Assignment, ApprovalRequest, Cycle)
            .join(ApprovalRequest, ApprovalRequest.id == Assignment.request_id)
            .join(Cycle, Cycle.id == ApprovalRequest.cycle_id)
            .where(Assignment.id.in_(ids), Assignment.official_id == official.id)
        )
        return {row[0].id: views.title_of(app.plan, OpenStep(*row), language) for row in rows.all()}


async def _decide_one(app, official: Official, step_id: uuid.UUID, outcome: Outcome, comment: str) -> str:
    """One step, its own transaction: decided (with its receipt, notes and wake) or why not."""
    now = utcnow()
    try:
        async with app.db.transaction() as session:
            await decide_and_tell(
                session,
                emails=app.emails,
                settings=app.settings,
                queued=Queued(step_id, official.id),
                outcome=outcome,
                comment=comment,
                now=now,
            )
    except decisions.NotYours:
        return views.NOT_YOURS
    except steps.AlreadyDecided:
        return views.ALREADY
    except decisions.AcknowledgeOnly:
        return views.ACKNOWLEDGE_ONLY
    except InvalidLink:
        return views.CLOSED
    except Refused:
        return views.REFUSED
    return views.DONE
