"""Read-only pages: the local inbox (development only); health and metrics are in `service.health`.

The cycles overview moved to `service.dashboard`, behind a login."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Request

from approvals.config import Environment
from approvals.i18n import local_time
from notifications.catcher import read_inbox
from service.deps import App
from service.web import language_of, render

router = APIRouter(include_in_schema=False)


@router.get("/mail")
async def inbox(request: Request, app: App):
    if app.settings.environment is not Environment.development:
        raise HTTPException(404)
    language = language_of(request, app.settings.default_language)
    messages = [
        {
            "subject": m.message["Subject"],
            "to": m.message["To"],
            "text": m.text,
            "date": local_time(dt.datetime.fromtimestamp(m.received, dt.UTC), app.plan.tz, language),
        }
        for m in read_inbox(app.settings.mail_dir)[:200]
    ]
    return render(request, "inbox.html", language, messages=messages)
