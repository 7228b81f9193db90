"""The web service: approval links, the local inbox, the overview; resumes waiting runs."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import asynccontextmanager

from fastapi import FastAPI

from approvals.config import Settings, get_settings
from approvals.db import Database
from approvals.plan import load_plan
from notifications.render import Renderer
from service import (
    api,
    dashboard,
    errors,
    health,
    links,
    login,
    pages,
    problems,
    queue,
    queue_session,
    report_links,
    short_links,
    submissions,
    timeline,
)
from service.deps import AppState
from service.limits import BodyLimit, LinkFailureLimit, WebLimits
from service.resume import Resumer
from service.security import SecurityHeaders, install_log_redaction


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    plan = load_plan(settings.plan_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        install_log_redaction()
        db = Database(settings.effective_database_url)
        renderer = Renderer()
        resumer = Resumer(
            db,
            plan=plan,
            settings=settings,
            renderer=renderer,
            event_deployment=settings.event_cycle_deployment,
            problem_deployment=settings.problem_cycle_deployment,
        )
        app.state.kehoach = AppState(settings=settings, plan=plan, db=db, renderer=renderer, resumer=resumer)
        stop = asyncio.Event()
        reconciler = (
            asyncio.create_task(resumer.run_forever(settings.resume_retry_interval, stop))
            if settings.reconcile
            else None
        )
        try:
            yield
        finally:
            stop.set()
            if reconciler is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await reconciler
            await db.dispose()

    app = FastAPI(
        title="kehoach",
        version="0.1.0",
        lifespan=lifespan,
        description="Approval links and the coordinators' views of Lạng Sơn's communication plan.",
    )
    limits = WebLimits.from_settings(settings)
    app.state.web_limits = limits
    # The last one added runs first: security headers on every answer, then the failed-link
    # limit (429 before anything else), then the body limit (413 before the body is read).
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes, default_language=settings.default_language)
    app.add_middleware(
        LinkFailureLimit,
        limit=limits.failure_limit,
        window=limits.failure_window,
        default_language=settings.default_language,
        trusted_proxies=settings.trusted_proxies,
    )
    app.add_middleware(SecurityHeaders)
    errors.install(app)  # every error's answer, API and pages
    app.include_router(queue_session.router)  # /a/{token}/queue and /q/: before /a/'s catch-all
    app.include_router(queue.router)  # /hang-doi: the official's queue
    app.include_router(report_links.router)  # /bao-cao/: an issued report too large to attach
    app.include_router(links.router)
    app.include_router(short_links.router)  # /l/: an SMS's short link
    app.include_router(submissions.router)
    app.include_router(problems.router)  # /p/: the "Báo cáo vướng mắc" form
    app.include_router(pages.router)
    app.include_router(health.router)  # /healthz, /readyz, /metrics
    app.include_router(api.router)  # the coordinators' API, /api/v1
    app.include_router(login.router)  # the coordinators' pages: /login, /logout
    app.include_router(dashboard.router)  # /, /cycles/.../resume, /reports/annual/...
    app.include_router(timeline.router)  # /requests/...
    return app
