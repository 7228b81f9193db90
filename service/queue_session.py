"""Opening an official's queue, and its session: signed, short-lived, made from a live link by a POST, never a password.

It rides in a cookie, not in the URL: an address is kept in the browser's history, shown over a
shoulder, pasted into a chat, forwarded with a screenshot; a cookie is not, and with `HttpOnly`
no script reads it, with `SameSite=Strict` no other site's form or link carries it (a forged
POST would also meet `refuse_cross_site`), with `Path=/hang-doi` it goes nowhere else, and
`Secure` keeps it off plain HTTP when the site is served over HTTPS. It names the official and
its expiry (HMAC with the link key, `approvals.tokens.queue_session_token`): nothing is stored,
so it cannot be revoked before it lapses, which is why it lasts minutes (`queue_session_minutes`),
and why it never decides anything a live link of the same official could not."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from approvals.db import utcnow
from approvals.errors import InvalidLink
from approvals.plan.people import Official
from approvals.routing import link_views
from approvals.tokens import queue_session_token, read_queue_link, read_queue_session
from service.deps import App
from service.errors import invalid_link_page
from service.web import known_language, refuse_cross_site, render

router = APIRouter(include_in_schema=False)

QUEUE_PATH = "/hang-doi"
COOKIE = "kehoach_queue"


def open_session(app, official_id: str, *, language: str | None = None) -> RedirectResponse:
    """The answer to the POST that makes a session: the queue (303: a GET), with the cookie."""
    minutes = app.settings.queue_session_minutes
    token = queue_session_token(app.settings.link_secret_bytes(), official_id, int(time.time()) + minutes * 60)
    response = RedirectResponse(QUEUE_PATH + (f"?lang={language}" if language else ""), status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=minutes * 60,
        path=QUEUE_PATH,
        httponly=True,
        samesite="strict",
        secure=app.settings.public_base_url.startswith("https://"),
    )
    return response


def session_official(request: Request, app) -> Official | None:
    """The official whose live session the request carries (genuine, unexpired, still in the
    plan), else None: a lapsed, forged or tampered session are one and the same answer."""
    token = request.cookies.get(COOKIE, "")
    official_id = read_queue_session(app.settings.link_secret_bytes(), token, now=time.time()) if token else None
    return app.plan.official(official_id) if official_id else None


# Opening the queue ------------------------------------------------------------------------------


@router.post("/a/{token}/queue")
async def from_link(request: Request, token: str, app: App):
    """A live approval link opens its official's queue (a POST: a mail scanner's GET opens nothing)."""
    language = known_language(request.query_params.get("lang"))
    if refused := refuse_cross_site(request, app.settings.public_base_url, language or "vi"):
        return refused
    async with app.db.reads() as session:
        try:
            view = await link_views.view_link(session, token, now=utcnow())
        except InvalidLink:
            return invalid_link_page(request, language or app.settings.default_language)
    return open_session(app, view.assignment.official_id, language=language)


def _queue_link_official(app, token: str) -> Official | None:
    official_id = read_queue_link(app.settings.link_secret_bytes(), token, now=time.time())
    return app.plan.official(official_id) if official_id else None


@router.api_route("/q/{token}", methods=["GET", "HEAD"])
async def queue_link(request: Request, token: str, app: App):
    """The digest's queue link: a button that opens the queue. Changes nothing."""
    official = _queue_link_official(app, token)
    language = known_language(request.query_params.get("lang")) or (
        official.language.value if official else app.settings.default_language
    )
    if official is None:
        return invalid_link_page(request, language)
    return render(request, "queue_open.html", language, official_name=official.name)


@router.post("/q/{token}")
async def open_from_queue_link(request: Request, token: str, app: App):
    language = known_language(request.query_params.get("lang"))
    if refused := refuse_cross_site(request, app.settings.public_base_url, language or "vi"):
        return refused
    official = _queue_link_official(app, token)
    if official is None:
        return invalid_link_page(request, language or app.settings.default_language)
    return open_session(app, official.id, language=language)
