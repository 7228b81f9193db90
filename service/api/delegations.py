"""Delegations ("ủy quyền") made through the API."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from approvals import coordination
from approvals.db import utcnow
from approvals.people import delegations
from service.api.auth import Coordinator
from service.api.errors import ACTION, CREATE, at
from service.api.schemas import DelegationCreate, DelegationRead
from service.deps import App

router = APIRouter(tags=["delegations"])


@router.get("/delegations", response_model=list[DelegationRead])
async def list_delegations(app: App, include_revoked: Annotated[bool, Query()] = False) -> list[DelegationRead]:
    """Delegations made through the API (the plan file's own are in the plan)."""
    async with app.db.reads() as session:
        rows = await delegations.list_delegations(session, include_revoked=include_revoked)
    return [DelegationRead.model_validate(r) for r in rows]


@router.post("/delegations", response_model=DelegationRead, status_code=201, responses=CREATE)
async def create_delegation(app: App, caller: Coordinator, body: DelegationCreate) -> DelegationRead:
    """Refused (422) for an unknown official or role, a role the delegator does not hold,
    dates backwards, a delegation to oneself, or one that would close a cycle."""
    with at("body"):
        async with app.db.transaction() as session:
            row = await delegations.create_delegation(
                session,
                plan=app.plan,
                delegator=body.delegator,
                delegate=body.delegate,
                role=body.role,
                valid_from=body.valid_from,
                valid_to=body.valid_to,
                reason=body.reason,
                by=caller.actor,
                now=utcnow(),
            )
    return DelegationRead.model_validate(row)


@router.post("/delegations/{delegation_id}/revoke", response_model=DelegationRead, responses=ACTION)
async def revoke_delegation(app: App, caller: Coordinator, delegation_id: uuid.UUID) -> DelegationRead:
    with at("path", "delegation_id"):
        async with app.db.transaction() as session:
            row = await coordination.revoke_delegation(
                session, delegation_id=delegation_id, by=caller.actor, now=utcnow()
            )
    return DelegationRead.model_validate(row)
