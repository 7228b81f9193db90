"""Where kehoach's errors become answers: once, for the API and for the pages.

The API (`/api/`) answers every error as RFC 9457 problem details (`application/problem+json`):
`type`, `title`, `status` and `detail`, and for a 422 an `errors` list that says where (`loc`),
what (`msg`) and why (`type`), as a validation error does. The status and the title come from
the error's meaning (`approvals.errors`); FastAPI's own errors (401, 403, a malformed body)
answer in the same shape.

The pages answer with the message page, titled in the reader's language.

**The link rule.** On the pages opened from an emailed link (`/a/`, `/s/`, `/p/`), a dead link
and a refused one answer alike: the invalid-link page, 404. Whoever holds the link may be a
guesser, and the page must not tell them that the token exists, nor which rule (separation of
duties, an official no longer in force) stopped them; ops read why in the log. The API, whose
callers are known coordinators, says exactly what was refused.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from approvals.errors import Conflict, InvalidLink, KehoachError, Refused
from approvals.i18n import catalogue
from service.web import LINK_PREFIX, MESSAGES, language_of, render

log = logging.getLogger("kehoach.errors")

PROBLEM = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: list | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"type": "about:blank", "title": title or TITLES.get(status, "Error"), "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = jsonable_encoder(errors)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def detail_of(exc: KehoachError) -> str:
    text = str(exc) or catalogue(MESSAGES).text(exc.key, "en")
    return f"{text}; nothing was changed." if isinstance(exc, Conflict) else text


async def kehoach_error(request: Request, exc: KehoachError):
    if _is_api(request):
        if exc.status >= 500:
            log.error("%s on %s: %s", type(exc).__name__, request.url.path, exc)
        errors = [{"loc": list(exc.loc or ("body",)), "msg": str(exc), "type": exc.kind}] if exc.status == 422 else None
        return problem(exc.status, detail_of(exc), title=catalogue(MESSAGES).text(exc.key, "en"), errors=errors)
    language = language_of(request, request.app.state.kehoach.settings.default_language)
    if request.url.path.startswith(LINK_PREFIX) and isinstance(exc, (InvalidLink, Refused)):
        if isinstance(exc, Refused):
            log.warning("%s refused: %s", request.url.path.split("/")[1], exc)
        return invalid_link_page(request, language)
    _ = catalogue(MESSAGES).gettext_for(language)
    return render(
        request,
        "message.html",
        language,
        status_code=exc.status,
        switch_url=None,
        title=_(exc.key),
        body=_("error.body"),
    )


def invalid_link_page(request: Request, language: str):
    """The one answer for every bad, expired, used, revoked or unknown link, and a refused one."""
    _ = catalogue(MESSAGES).gettext_for(language)
    return render(
        request,
        "message.html",
        language,
        status_code=404,
        title=_("invalid.title"),
        body=_("invalid.body"),
        switch_url=None,
    )


async def http_error(request: Request, exc: HTTPException):
    if not _is_api(request):
        return await http_exception_handler(request, exc)
    detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
    return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def validation_error(request: Request, exc: RequestValidationError):
    if not _is_api(request):
        return await request_validation_exception_handler(request, exc)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return problem(422, "The request is not valid; nothing was changed.", errors=errors)


def install(app: FastAPI) -> None:
    # FastAPI's decorator (it calls add_exception_handler), typed for a handler of one exception class
    app.exception_handler(KehoachError)(kehoach_error)
    app.exception_handler(HTTPException)(http_error)
    app.exception_handler(RequestValidationError)(validation_error)
