"""Shared pieces of the web layer: templates, language choice, the message page and
cross-site refusal. The middlewares are in `service.security` (headers, log hygiene) and
`service.limits` (body size, failed link attempts)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import StrictUndefined
from markupsafe import Markup, escape
from starlette.types import Scope, Send

from approvals.i18n import LANGUAGES, catalogue

PACKAGE_DIR = Path(__file__).resolve().parent
MESSAGES = PACKAGE_DIR / "locale" / "messages.yaml"
_URL = re.compile(r"https?://[^\s<>\"]+")
# Approval, (re)submission, problem, queue, issued-report and short (SMS) links: tokens in the
# path (no-store, the failed-link limit, a dead one answered with the one invalid-link page).
LINK_PREFIX = ("/a/", "/s/", "/p/", "/q/", "/bao-cao/", "/l/")

log = logging.getLogger("kehoach.web")


def _linkify(text: str) -> Markup:
    escaped = str(escape(text))
    return Markup(_URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped))


templates = Jinja2Templates(directory=str(PACKAGE_DIR / "templates"))
templates.env.filters["linkify"] = _linkify
templates.env.undefined = StrictUndefined
templates.env.auto_reload = False  # the pages are read once per process: no stat() per page


def known_language(value: object) -> str | None:
    return value if isinstance(value, str) and value in LANGUAGES else None


def language_of(request: Request, default: str) -> str:
    return known_language(request.query_params.get("lang")) or default


def render(request: Request, name: str, language: str, status_code: int = 200, **context) -> HTMLResponse:
    other = "en" if language == "vi" else "vi"
    context.setdefault("switch_url", f"?lang={other}")
    return templates.TemplateResponse(
        request,
        name,
        {"language": language, "_": catalogue(MESSAGES).gettext_for(language), **context},
        status_code=status_code,
    )


def message_page(language: str, title_key: str, body_key: str, **values: object) -> bytes:
    """A plain message page (message.html) rendered without a request, for the middlewares."""
    _ = catalogue(MESSAGES).gettext_for(language)
    html = templates.get_template("message.html").render(
        language=language, _=_, title=_(title_key), body=_(body_key, **values), switch_url=None
    )
    return html.encode("utf-8")


async def send_page(scope: Scope, send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body})


def query_language(scope: Scope, default: str) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "lang" and known_language(value):
            return value
    return default


def cross_site(request, base_url: str) -> bool:
    """A POST that says it came from another site is refused (mail scanners, forged forms, login CSRF)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return False
    allowed = {f"{p.scheme}://{p.netloc}" for p in (urlsplit(base_url), urlsplit(str(request.base_url)))}
    return origin.rstrip("/") not in allowed


def refuse_cross_site(request, base_url: str, language: str):
    """The 403 page for a POST from another site, or None when the POST may go on."""
    if not cross_site(request, base_url):
        return None
    _ = catalogue(MESSAGES).gettext_for(language)
    return render(
        request,
        "message.html",
        language,
        status_code=403,
        title=_("forbidden.title"),
        body=_("forbidden.body"),
        switch_url=None,
    )
