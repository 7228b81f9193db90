"""Cycles and their stages; cancelling a cycle."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from approvals import coordination
from approvals.db import utcnow
from approvals.models import Wake
from approvals.running import cycles
from service.api.auth import Coordinator
from service.api.errors import ACTION, ONE, at
from service.api.present import cycle_read, restart_read
from service.api.schemas import (
    ID_PATTERN,
    CycleCancelCreate,
    CycleCancelRead,
    CycleRead,
    CycleResumeCreate,
    CycleResumeRead,
    CycleStageRead,
)
from service.deps import App

router = APIRouter(tags=["cycles"])


@router.get("/cycles", response_model=list[CycleRead])
async def list_cycles(
    app: App,
    year: Annotated[
        int | None, Query(ge=2000, le=2100, description="Cycles whose period starts with this year.")
    ] = None,
    kind: Annotated[
        str | None, Query(pattern=ID_PATTERN, max_length=64, description="A cycle kind of the plan.")
    ] = None,
) -> list[CycleRead]:
    """Cycles, newest period first, each with the plan's stages and their progress."""
    async with app.db.reads() as session:
        views = await coordination.cycles(session, now=utcnow(), year=year, kind=kind)
    return [cycle_read(app.plan, v, app.settings.default_language) for v in views]


async def _one(app: App, cycle_id: uuid.UUID) -> CycleRead:
    async with app.db.reads() as session:
        views = await coordination.cycles(session, now=utcnow(), cycle_id=cycle_id)
    if not views:
        raise HTTPException(404, f"no cycle {cycle_id}")
    return cycle_read(app.plan, views[0], app.settings.default_language)


@router.get("/cycles/{cycle_id}", response_model=CycleRead, responses=ONE)
async def get_cycle(app: App, cycle_id: uuid.UUID) -> CycleRead:
    return await _one(app, cycle_id)


@router.get("/cycles/{cycle_id}/stages", response_model=list[CycleStageRead], responses=ONE)
async def get_cycle_stages(app: App, cycle_id: uuid.UUID) -> list[CycleStageRead]:
    """The plan's stages of the cycle in order, `not_started` for those with no request yet."""
    return (await _one(app, cycle_id)).stages


@router.post("/cycles/{cycle_id}/cancel", response_model=CycleCancelRead, responses=ACTION)
async def cancel_cycle(app: App, caller: Coordinator, cycle_id: uuid.UUID, body: CycleCancelCreate) -> CycleCancelRead:
    """Every pending request of the cycle expires (never an approval) and its links stop working;
    the flow runs waiting on them are resumed by the service's reconciler."""
    with at("body", "reason"):
        async with app.db.transaction() as session:
            cancelled = await coordination.cancel_cycle(
                session, cycle_id=cycle_id, reason=body.reason, by=caller.actor, now=utcnow()
            )
            await app.emails.cancelled(session, cancelled.cycle, cancelled.expired, cancelled.closed, at=cancelled.at)
    return CycleCancelRead(
        cycle_id=cancelled.cycle.id, cancelled_at=cancelled.at, expired_requests=[r.id for r in cancelled.expired]
    )


@router.post("/cycles/{cycle_id}/resume", response_model=CycleResumeRead, status_code=202, responses=ACTION)
async def resume_cycle(
    app: App, caller: Coordinator, cycle_id: uuid.UUID, body: CycleResumeCreate | None = None
) -> CycleResumeRead:
    """Restart a cycle whose run died, failed or ended before the cycle did (its `attention`):
    a new run takes its place and goes on from where the cycle is, asking nobody again and
    sending no email twice. The restart is queued and this answers at once (202), whether
    Prefect is up or not; the service starts the run as soon as Prefect lets it, and the
    cycle's `restart` says how it went (`GET /cycles/{id}`). Asking again while one is queued
    finds it. Refused (409) for a finished cycle. A run that is alive is not replaced unless
    `force` (the old run is then cancelled first): the restart is then parked, with why."""
    try:
        async with app.db.transaction() as session:
            asked = await cycles.ask_restart(
                session, cycle_id, by=caller.actor, force=bool(body and body.force), now=utcnow()
            )
            wake = await session.get(Wake, asked.wake_id)
    except cycles.NotRestartable as exc:  # the message says why
        raise HTTPException(409, str(exc)) from None
    return CycleResumeRead(cycle_id=cycle_id, previous_run=asked.cycle.run_id, restart=restart_read(wake))
