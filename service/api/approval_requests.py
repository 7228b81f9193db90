"""Approval requests under /api/v1/requests: the pending list, one request's history, and the actions on them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from approvals import coordination
from approvals.db import utcnow
from approvals.statuses import RequestStatus
from service.api.auth import Coordinator
from service.api.errors import ACTION, ONE, at
from service.api.present import history_read, request_read
from service.api.schemas import (
    ID_PATTERN,
    ActionRead,
    AttentionRead,
    ReassignCreate,
    RemindManyCreate,
    RemindManyRead,
    RequestHistoryRead,
    RequestRead,
)
from service.deps import App, AppState

router = APIRouter(tags=["requests"])


def _ttl(app: AppState) -> dt.timedelta:
    return dt.timedelta(days=app.settings.link_ttl_days)


def _action(acted: coordination.Acted, action: str, queued: int) -> ActionRead:
    notified = [n.official.id for n in acted.notify] + ([acted.submission.official.id] if acted.submission else [])
    return ActionRead(request_id=acted.request.id, action=action, notified=notified, emails_queued=queued)


@router.get("/attention", response_model=list[AttentionRead], tags=["attention"])
async def list_attention(app: App) -> list[AttentionRead]:
    """What only a person can move on: steps nobody could be asked to (re)submit (the plan has
    nobody in the role that day). The same list heads the dashboard."""
    async with app.db.reads() as session:
        unrouted = await coordination.unrouted_steps(session)
    return [
        AttentionRead(
            kind="submission_unrouted"
            if v.request.status == RequestStatus.awaiting_submission.value
            else "resubmission_unrouted",
            cycle_id=v.cycle.id,
            cycle=f"{v.cycle.kind}/{v.cycle.period}",
            request_id=v.request.id,
            stage=v.request.stage,
            subject=v.request.subject,
            since=v.request.decided_at or v.request.created_at,
        )
        for v in unrouted
    ]


@router.get("/requests", response_model=list[RequestRead])
async def list_requests(
    app: App,
    status: Annotated[RequestStatus, Query(description="Pending by default.")] = RequestStatus.pending,
    agency: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=64, description="The acting agency.")] = None,
    stage: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=64)] = None,
    cycle_id: uuid.UUID | None = None,
    overdue: Annotated[bool | None, Query(description="Only past their due time (true) or not (false).")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> list[RequestRead]:
    """Requests (pending by default), the one due longest ago first."""
    now = utcnow()
    async with app.db.reads() as session:
        views = await coordination.find_requests(
            session,
            now=now,
            status=status,
            agency=agency,
            stage=stage,
            cycle_id=cycle_id,
            overdue=overdue,
            limit=limit,
            offset=offset,
        )
    return [request_read(v, now) for v in views]


@router.get("/requests/{request_id}", response_model=RequestHistoryRead, responses=ONE)
async def get_request(app: App, request_id: uuid.UUID) -> RequestHistoryRead:
    """The request with its assignments, decisions (comments, on whose behalf) and audit rows."""
    with at("path", "request_id"):
        async with app.db.reads() as session:
            found = await coordination.history(session, request_id)
    return history_read(app.plan, found, utcnow())


@router.post("/requests/remind", response_model=RemindManyRead, responses=ACTION)
async def remind_many(app: App, caller: Coordinator, body: RemindManyCreate) -> RemindManyRead:
    """Remind every listed request now, all or nothing: one unknown (404) or settled (409)
    request and nobody is reminded."""
    with at("body", "request_ids"):
        async with app.db.transaction() as session:
            done = await coordination.remind_many(
                session,
                plan=app.plan,
                secret=app.settings.link_secret_bytes(),
                request_ids=body.request_ids,
                by=caller.actor,
                now=utcnow(),
                link_ttl=_ttl(app),
            )
            reminded = [
                _action(acted, "remind", await app.emails.coordinated(session, acted, kind="reminder"))
                for acted in done
            ]
    return RemindManyRead(reminded=reminded)


@router.post("/requests/{request_id}/remind", response_model=ActionRead, responses=ACTION)
async def remind(app: App, caller: Coordinator, request_id: uuid.UUID) -> ActionRead:
    """Send the officials still waited on a reminder now, each with a new link (the old one stops working)."""
    with at("path", "request_id"):
        async with app.db.transaction() as session:
            acted = await coordination.remind(
                session,
                plan=app.plan,
                secret=app.settings.link_secret_bytes(),
                request_id=request_id,
                by=caller.actor,
                now=utcnow(),
                link_ttl=_ttl(app),
            )
            queued = await app.emails.coordinated(session, acted, kind="reminder")
    return _action(acted, "remind", queued)


@router.post("/requests/{request_id}/escalate", response_model=ActionRead, responses=ACTION)
async def escalate(app: App, caller: Coordinator, request_id: uuid.UUID) -> ActionRead:
    """Escalate now to the stage's superior, as the sweep does at the due time."""
    with at("path", "request_id"):
        async with app.db.transaction() as session:
            acted = await coordination.escalate(
                session,
                plan=app.plan,
                secret=app.settings.link_secret_bytes(),
                request_id=request_id,
                by=caller.actor,
                now=utcnow(),
                link_ttl=_ttl(app),
            )
            queued = await app.emails.coordinated(session, acted, kind="escalation")
    return _action(acted, "escalate", queued)


@router.post("/assignments/{assignment_id}/reassign", response_model=ActionRead, responses=ACTION)
async def reassign(app: App, caller: Coordinator, assignment_id: uuid.UUID, body: ReassignCreate) -> ActionRead:
    """Move one official's assignment to another: the old link stops working, the new official
    is emailed a link (at once, or when their turn in a sequence comes)."""
    with at("body", "to_official"):
        async with app.db.transaction() as session:
            acted = await coordination.reassign(
                session,
                plan=app.plan,
                secret=app.settings.link_secret_bytes(),
                assignment_id=assignment_id,
                to_official=body.to_official,
                by=caller.actor,
                now=utcnow(),
                link_ttl=_ttl(app),
            )
            queued = await app.emails.coordinated(session, acted, kind="approval_request")
    return _action(acted, "reassign", queued)
