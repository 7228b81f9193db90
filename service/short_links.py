"""`/l/{code}`: an SMS's short link (`notifications.short_links`). GET and HEAD change nothing:
a live code answers 303 to the personal link it stands for (whose GET only shows the page:
deciding stays the POST there). A malformed, unknown or expired code answers the one
invalid-link page and counts toward the failed-link limit, as a bad `/a/` token does (`/l/` is
one of `service.web.LINK_PREFIX`: no-store, no referrer, redacted in the access log)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from approvals.db import utcnow
from notifications.short_links import UnknownShortLink, short_link_target
from service.deps import App

router = APIRouter(include_in_schema=False)


@router.api_route("/l/{code}", methods=["GET", "HEAD"])
async def follow(request: Request, code: str, app: App) -> RedirectResponse:
    async with app.db.reads() as session:
        target = await short_link_target(session, code, secret=app.settings.link_secret_bytes(), now=utcnow())
    return RedirectResponse(target, status_code=303)


@router.api_route("/l/{rest:path}", methods=["GET", "HEAD", "POST"])
async def not_a_short_link(rest: str) -> None:
    """Anything else under /l/ (more path, an empty code, a POST) gets a bad code's answer."""
    raise UnknownShortLink("not a short link")
