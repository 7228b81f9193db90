"""The approval link: GET shows the step and changes nothing; only the form's POST decides."""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
import uuid
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from starlette.exceptions import HTTPException

from approvals.db import utcnow
from approvals.errors import InvalidLink
from approvals.i18n import catalogue, local_time, vnd
from approvals.models import SubmissionFile
from approvals.routing import decisions, link_views, steps
from approvals.routing.files import files_of
from approvals.statuses import Outcome
from approvals.tokens import problem_token
from approvals.wording.presentation import official_name, role_name, shown_context, step_context
from notifications.deciding import decide_and_tell
from service.deps import App
from service.errors import invalid_link_page
from service.limits import web_limits
from service.web import MESSAGES, known_language, refuse_cross_site, render

log = logging.getLogger("kehoach.links")
router = APIRouter()

MAX_FORM_FIELDS = 16
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def problem_url(app, official_id: str | None, *, relative: bool = True) -> str:
    """The official's problem link issued now (for a page: relative to the site)."""
    if not official_id:
        return ""
    issued = f"{dt.datetime.now(app.plan.tz):%Y%m%d}"
    path = f"/p/{problem_token(app.settings.link_secret_bytes(), official_id, issued)}"
    return path if relative else f"{app.settings.public_base_url.rstrip('/')}{path}"


async def _page(
    request: Request,
    app: App,
    token: str,
    *,
    language: str | None,
    status_code: int = 200,
    error: str = "",
    error_key: str = "",
    chosen: str = "",
    comment: str = "",
):
    """The approval page of a live link (the official's language unless one is asked for),
    or the invalid-link page. Reads only."""
    async with app.db.reads() as session:
        try:
            view = await link_views.view_link(session, token, now=utcnow())
        except InvalidLink:
            return invalid_link_page(request, language or app.settings.default_language)
        attached = [
            {"name": f.filename, "size_kb": max(1, f.size // 1024), "url": f"{token}/files/{f.id}"}
            for f in await files_of(session, view.request.id)
        ]
    official = app.plan.official(view.assignment.official_id)
    official_language = official.language.value if official else app.settings.default_language
    language = language or official_language
    _ = catalogue(MESSAGES).gettext_for(language)
    others = []
    for other in view.others:
        person = app.plan.official(other.official_id)
        others.append(
            {
                "name": person.name if person else other.official_id,
                "role": role_name(app.plan, other.role, language),
                "status": other.status,
            }
        )
    data = view.request.data or {}
    amount = data.get("amount")
    stage = steps.stage_of(app.plan, view.cycle.kind, view.request.stage)
    named = [
        {"name": spec.name.get(language), "value": data.get("fields", {}).get(spec.id, "")}
        for spec in app.plan.fields_of(view.cycle.kind, stage)
    ]
    earlier = [
        {
            "round": previous.round,
            "decisions": [
                {
                    "name": official_name(app.plan, d.official_id),
                    "outcome": d.outcome,
                    "comment": d.comment,
                    "at": local_time(d.decided_at, app.plan.tz, language),
                }
                for d in decisions
            ],
        }
        for previous, decisions in view.earlier
    ]
    return render(
        request,
        "approval.html",
        language,
        status_code=status_code,
        submitted_text=str(data.get("text", "")),
        submitted_links=[str(u) for u in data.get("links", [])][:20],
        amount=vnd(amount, language) if isinstance(amount, int) else "",
        earlier=earlier,
        round=view.request.round,
        attached=attached,
        named=[f for f in named if f["value"]],
        acknowledge=stage.acknowledge,
        problem_url=problem_url(app, view.assignment.official_id),
        queue_url=f"{token}/queue" + (f"?lang={language}" if language != official_language else ""),
        shown=shown_context(app.plan, view.request, view.cycle, language=language, base=f"{token}/shown"),
        official_name=official.name if official else view.assignment.official_id,
        role_name=role_name(app.plan, view.assignment.role, language),
        policy=view.request.policy,
        others=others,
        error=_(error_key) if error_key else error,
        chosen=chosen,
        comment=comment,
        max_comment=decisions.MAX_COMMENT,
        **step_context(app.plan, view.request, view.cycle, language=language),
    )


@router.api_route("/a/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def show(request: Request, token: str, app: App):
    return await _page(request, app, token, language=known_language(request.query_params.get("lang")))


def clean_comment(text: str) -> str:
    """NFC (Vietnamese typed on phones is often decomposed), Unix newlines, no control characters."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


async def _skip_rest_of_stream(request: Request) -> None:
    """Read and drop the rest of a body sent without a Content-Length, so that one larger than
    the body limit is answered 413 like a body that declared its size (the limit stops the reading)."""
    if "content-length" in request.headers:
        return
    while True:
        message = await request.receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def form_field(form, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


@router.post("/a/{token}", include_in_schema=False)
async def decide(request: Request, token: str, app: App):
    query_language = known_language(request.query_params.get("lang"))
    language = query_language or app.settings.default_language
    _ = catalogue(MESSAGES).gettext_for(language)
    if refused := refuse_cross_site(request, app.settings.public_base_url, language):
        return refused
    limits = web_limits(request)
    try:
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=limits.max_field_bytes)
    except HTTPException as exc:
        if exc.status_code == 413:
            raise  # the body limit answers this one
        if "maximum size" in str(exc.detail):  # only the comment can be that long: say so, keep nothing
            await _skip_rest_of_stream(request)  # a streamed body past the body limit gets 413 instead
            return await _page(
                request, app, token, language=query_language, status_code=422, error_key="error.comment_too_long"
            )
        return render(
            request,
            "message.html",
            language,
            status_code=400,
            title=_("bad_request.title"),
            body=_("bad_request.body"),
            switch_url=None,
        )

    language = known_language(form_field(form, "lang")) or language
    _ = catalogue(MESSAGES).gettext_for(language)
    outcome = form_field(form, "outcome")
    comment = clean_comment(form_field(form, "comment"))
    try:
        choice = Outcome(outcome)
    except ValueError:
        return await _page(
            request,
            app,
            token,
            language=language,
            status_code=422,
            error_key="error.choose_outcome",
            comment=comment[: decisions.MAX_COMMENT],
        )
    if len(comment.strip()) > decisions.MAX_COMMENT:
        return await _page(
            request, app, token, language=language, status_code=422, error_key="error.comment_too_long", chosen=outcome
        )
    now = utcnow()
    try:
        async with app.db.transaction() as session:
            result = await decide_and_tell(
                session, emails=app.emails, settings=app.settings, token=token, outcome=choice, comment=comment, now=now
            )
    except decisions.CommentRequired:
        return await _page(
            request,
            app,
            token,
            language=language,
            status_code=422,
            error_key="error.comment_required",
            chosen=outcome,
            comment=comment,
        )
    except decisions.AcknowledgeOnly:
        return await _page(
            request, app, token, language=language, status_code=422, error_key="error.acknowledge_only", comment=comment
        )
    # A dead link, or a refused decision (separation of duties, an official no longer in the
    # directory), answers the invalid-link page: service/errors.py, the link rule.
    except steps.AlreadyDecided:
        return render(
            request,
            "message.html",
            language,
            status_code=409,
            title=_("already.title"),
            body=_("already.body"),
            switch_url=None,
        )
    # No call to Prefect here: a settled stage queued its run's wake in the same transaction.
    at = local_time(now, app.plan.tz, language)
    return render(
        request,
        "message.html",
        language,
        switch_url=None,
        title=_("done.title"),
        body=_("done.body", outcome=_(f"outcome.{choice.value}"), at=at),
        problem_url=problem_url(app, result.decision.official_id),
    )


@router.api_route("/a/{token}/files/{file_id}", methods=["GET", "HEAD"], include_in_schema=False)
async def download(request: Request, token: str, file_id: str, app: App):
    """A file submitted with the step, for whoever holds a live link to it. Changes nothing."""
    language = known_language(request.query_params.get("lang")) or app.settings.default_language
    async with app.db.reads() as session:
        try:
            view = await link_views.view_link(session, token, now=utcnow())
            row = await session.get(SubmissionFile, uuid.UUID(file_id))
        except (InvalidLink, ValueError):
            return invalid_link_page(request, language)
        if row is None or row.request_id != view.request.id:
            return invalid_link_page(request, language)
    return file_response(row)


def file_response(row: SubmissionFile) -> Response:
    """A file for download from a link page: never rendered in the page's origin."""
    disposition = f"attachment; filename*=UTF-8''{quote(row.filename)}"
    return Response(
        row.data,
        media_type=row.content_type,
        headers={
            "Content-Disposition": disposition,
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


def carries_file(request_data: dict | None, file_id: str) -> bool:
    """Whether a file is among those of the earlier stages this step shows."""
    return any(
        f.get("id") == file_id for entry in (request_data or {}).get("shown", []) for f in entry.get("files", [])
    )


async def shown_file(request: Request, app, file_id: str, live_view):
    """A file an earlier stage received that travels with a step (the orientation's, the Board's
    guidance's), for whoever holds a live link to the step: `live_view(session)` reads the
    link's view (or raises InvalidLink). Any other file, or a dead link, gets the invalid page."""
    language = known_language(request.query_params.get("lang")) or app.settings.default_language
    async with app.db.reads() as session:
        try:
            view = await live_view(session)
            row = (
                await session.get(SubmissionFile, uuid.UUID(file_id))
                if carries_file(view.request.data, file_id)
                else None
            )
        except (InvalidLink, ValueError):
            return invalid_link_page(request, language)
    return invalid_link_page(request, language) if row is None else file_response(row)


@router.api_route("/a/{token}/shown/{file_id}", methods=["GET", "HEAD"], include_in_schema=False)
async def download_shown(request: Request, token: str, file_id: str, app: App):
    """A file an earlier stage received, from an approval link. Changes nothing."""
    return await shown_file(request, app, file_id, lambda session: link_views.view_link(session, token, now=utcnow()))


@router.api_route("/a/{rest:path}", methods=["GET", "HEAD", "POST"], include_in_schema=False)
async def not_a_link(request: Request, rest: str, app: App):
    """Anything else under /a/ (a token with more path after it, an empty token) gets the
    same answer as a bad token: no route-shaped hints, and it counts as a failed attempt."""
    return invalid_link_page(request, known_language(request.query_params.get("lang")) or app.settings.default_language)
