"""Who the plan is waiting on, and who is calling."""

from __future__ import annotations

from fastapi import APIRouter

from approvals import coordination
from approvals.db import utcnow
from service.api.auth import Reader
from service.api.schemas import AccountRead, WaitingOnRead
from service.deps import App

router = APIRouter(tags=["officials"])


@router.get("/waiting-on", response_model=list[WaitingOnRead])
async def waiting_on(app: App) -> list[WaitingOnRead]:
    """Officials with pending assignments: how many, how many overdue, the oldest due time; longest waited on first."""
    async with app.db.reads() as session:
        found = await coordination.waiting_on(session, now=utcnow())
    shown = []
    for w in found:
        official = app.plan.official(w.official_id)
        shown.append(
            WaitingOnRead(
                official_id=w.official_id,
                name=official.name if official else None,
                agency=official.agency if official else None,
                pending=w.pending,
                overdue=w.overdue,
                oldest_due_at=w.oldest_due_at,
            )
        )
    return shown


@router.get("/me", response_model=AccountRead)
async def me(caller: Reader) -> AccountRead:
    return AccountRead(name=caller.name, role=caller.role.value)
