"""Read-only pages: the local inbox (development only) and the cycles overview."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select

from approvals.config import Environment
from approvals.i18n import local_time
from approvals.models import Cycle, CycleStage
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
        {"subject": m.message["Subject"], "to": m.message["To"], "text": m.text,
         "date": local_time(dt.datetime.fromtimestamp(m.received, dt.UTC), app.settings.tz, language)}
        for m in read_inbox(app.settings.mail_dir)[:200]
    ]
    return render(request, "inbox.html", language, messages=messages)


@router.get("/")
async def dashboard(request: Request, app: App):
    language = language_of(request, app.settings.default_language)
    async with app.db.sessions() as session:
        cycles = list((await session.execute(select(Cycle).order_by(Cycle.period.desc(), Cycle.kind))).scalars())
        statuses = {(s.cycle_id, s.stage): s.status for s in (await session.execute(select(CycleStage))).scalars()}
    shown = []
    for cycle in cycles:
        kind = app.plan.cycle(cycle.kind)
        stages = [{"number": s.number, "name": s.name.get(language),
                   "status": statuses.get((cycle.id, s.id), "not_started")} for s in kind.stages]
        shown.append({"name": f"{kind.name.get(language)} {cycle.period}", "stages": stages})
    return render(request, "dashboard.html", language, cycles=shown)


@router.get("/healthz")
async def health():
    return {"status": "ok"}
