"""The coordinators' login: the form, the session cookie it sets, logging out, and what every
coordinator page does first (the caller, or the way to the login form)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException

from approvals.db import utcnow
from approvals.i18n import catalogue
from service.api.auth import (
    Caller,
    caller_from_token,
    clear_session_cookie,
    dashboard_caller,
    set_session_cookie,
)
from service.deps import App, AppState
from service.web import MESSAGES, cross_site, language_of, render

router = APIRouter(include_in_schema=False)

MAX_LOGIN_FIELD = 1024
NO_STORE = {"Cache-Control": "no-store"}


# Login ---------------------------------------------------------------------------------


def lang_query(language: str, app: AppState) -> str:
    return "" if language == app.settings.default_language else f"?lang={language}"


def to_login(language: str, app: AppState) -> RedirectResponse:
    return RedirectResponse("/login" + lang_query(language, app), status_code=303, headers=NO_STORE)


def coordinator_page(
    request: Request, app: AppState, name: str, language: str, caller: Caller | None, status_code: int = 200, **context
):
    response = render(
        request,
        name,
        language,
        status_code=status_code,
        caller=caller,
        lang_query=lang_query(language, app),
        **context,
    )
    response.headers.update(NO_STORE)
    return response


async def caller_or_login(request: Request, app: AppState, language: str) -> Caller | RedirectResponse:
    caller = await dashboard_caller(request, app, utcnow())
    return caller if caller is not None else to_login(language, app)


@router.get("/login")
async def login_form(request: Request, app: App):
    language = language_of(request, app.settings.default_language)
    return coordinator_page(request, app, "login.html", language, None, error="")


@router.post("/login")
async def login(request: Request, app: App):
    language = language_of(request, app.settings.default_language)
    _ = catalogue(MESSAGES).gettext_for(language)
    if cross_site(request, app.settings.public_base_url):
        return coordinator_page(
            request, app, "login.html", language, None, status_code=403, error=_("dash.login.cross_site")
        )
    try:
        form = await request.form(max_files=0, max_fields=4, max_part_size=MAX_LOGIN_FIELD)
    except HTTPException as exc:
        if exc.status_code == 413:
            raise
        return coordinator_page(
            request, app, "login.html", language, None, status_code=400, error=_("dash.login.failed")
        )
    token = form.get("token")
    caller = await caller_from_token(app, token.strip()) if isinstance(token, str) else None
    if caller is None:
        return coordinator_page(
            request, app, "login.html", language, None, status_code=401, error=_("dash.login.failed")
        )
    response = RedirectResponse("/" + lang_query(language, app), status_code=303, headers=NO_STORE)
    set_session_cookie(response, app, caller, utcnow())
    return response


@router.post("/logout")
async def logout(request: Request, app: App):
    language = language_of(request, app.settings.default_language)
    response = to_login(language, app)
    clear_session_cookie(response, app)
    return response


# The overview ----------------------------------------------------------------------------


def not_found_page(request: Request, app: AppState, language: str, caller: Caller):
    _ = catalogue(MESSAGES).gettext_for(language)
    return coordinator_page(
        request,
        app,
        "message.html",
        language,
        caller,
        status_code=404,
        title=_("dash.not_found.title"),
        body=_("dash.not_found.body"),
    )
