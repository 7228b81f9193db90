"""Shared pieces of the web layer: templates, language choice, security headers, log hygiene."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import StrictUndefined
from markupsafe import Markup, escape
from starlette.middleware.base import BaseHTTPMiddleware

from approvals.i18n import catalogue

PACKAGE_DIR = Path(__file__).resolve().parent
MESSAGES = PACKAGE_DIR / "locale" / "messages.yaml"
_URL = re.compile(r"https?://[^\s<>\"]+")


def _linkify(text: str) -> Markup:
    escaped = str(escape(text))
    return Markup(_URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped))


templates = Jinja2Templates(directory=str(PACKAGE_DIR / "templates"))
templates.env.filters["linkify"] = _linkify
templates.env.undefined = StrictUndefined


def language_of(request: Request, default: str) -> str:
    chosen = request.query_params.get("lang")
    return chosen if chosen in ("vi", "en") else default


def render(request: Request, name: str, language: str, status_code: int = 200, **context) -> object:
    other = "en" if language == "vi" else "vi"
    context.setdefault("switch_url", f"?lang={other}")
    return templates.TemplateResponse(
        request, name, {"language": language, "_": catalogue(MESSAGES).gettext_for(language), **context},
        status_code=status_code,
    )


SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
}


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith(("/a/", "/mail")):
            response.headers["Cache-Control"] = "no-store"
        return response


_TOKEN_PATH = re.compile(r"/a/[^\s/?\"]+")


class RedactTokens(logging.Filter):
    """Uvicorn's access log prints paths; a link token must never reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_PATH.sub("/a/[redacted]", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = _TOKEN_PATH.sub("/a/[redacted]", record.msg)
        return True


def install_log_redaction() -> None:
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn", "fastapi"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
