"""Economic events, each of which starts a per-event economy cycle."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from approvals import coordination
from approvals.db import utcnow
from service.api.auth import Coordinator
from service.api.errors import CREATE
from service.api.schemas import EconomicEventCreate, EconomicEventRead
from service.deps import App

router = APIRouter(tags=["events"])


@router.get("/events", response_model=list[EconomicEventRead])
async def list_events(
    app: App, limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Annotated[int, Query(ge=0, le=100_000)] = 0
) -> list[EconomicEventRead]:
    async with app.db.reads() as session:
        rows = await coordination.list_events(session, limit=limit, offset=offset)
    return [EconomicEventRead.model_validate(r) for r in rows]


@router.post("/events", response_model=EconomicEventRead, status_code=201, responses=CREATE)
async def record_event(app: App, caller: Coordinator, body: EconomicEventCreate) -> EconomicEventRead:
    async with app.db.transaction() as session:
        event = await coordination.record_event(
            session,
            name=body.name,
            starts_on=body.starts_on,
            description=body.description,
            by=caller.actor,
            now=utcnow(),
        )
    return EconomicEventRead.model_validate(event)
