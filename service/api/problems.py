"""Problems a unit raises with the PPC (stage E of the plan), each put before the PPC's
leadership by its own escalation cycle, which the service starts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from approvals import coordination
from approvals.db import utcnow
from service.api.auth import Coordinator
from service.api.errors import CREATE, at
from service.api.schemas import ProblemCreate, ProblemRead
from service.deps import App

router = APIRouter(tags=["problems"])


@router.get("/problems", response_model=list[ProblemRead])
async def list_problems(
    app: App, limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Annotated[int, Query(ge=0, le=100_000)] = 0
) -> list[ProblemRead]:
    async with app.db.reads() as session:
        rows = await coordination.list_problems(session, limit=limit, offset=offset)
    return [ProblemRead.model_validate(r) for r in rows]


@router.post("/problems", response_model=ProblemRead, status_code=201, responses=CREATE)
async def record_problem(app: App, caller: Coordinator, body: ProblemCreate) -> ProblemRead:
    """Record the problem; its escalation cycle starts within seconds (or once Prefect can be reached)."""
    with at("body", "unit"):
        async with app.db.transaction() as session:
            problem = await coordination.record_problem(
                session,
                plan=app.plan,
                title=body.title,
                description=body.description,
                unit=body.unit,
                by=caller.actor,
                now=utcnow(),
            )
    return ProblemRead.model_validate(problem)
