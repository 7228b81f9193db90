"""Delegations made through the API: checked against the plan's and each other, audited."""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.db import dialect_name, rowcount
from approvals.models import Delegation
from approvals.people.directory import delegations_in_force
from approvals.plan.delegation_rules import DelegationRefused, Grant, check_new
from approvals.plan.schema import Plan

_DELEGATION_LOCK = 0x64656C65  # 'dele'


async def create_delegation(
    session: AsyncSession,
    *,
    plan: Plan,
    delegator: str,
    delegate: str,
    role: str | None,
    valid_from: dt.date,
    valid_to: dt.date,
    reason: str,
    by: str,
    now: dt.datetime,
) -> Delegation:
    for official_id in (delegator, delegate):
        if plan.official(official_id) is None:
            raise DelegationRefused(f"unknown official '{official_id}'")
    if role is not None and role not in {r.id for r in plan.roles}:
        raise DelegationRefused(f"unknown role '{role}'")
    holder = plan.official(delegator)
    assert holder is not None, "checked above"
    if role is not None and role not in holder.roles:
        raise DelegationRefused(f"'{delegator}' does not hold the role '{role}'")
    if dialect_name(session) == "postgresql":  # one delegation check at a time: no cycle slips in between
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _DELEGATION_LOCK})
    grant = Grant(delegator, delegate, role, valid_from, valid_to)
    check_new(grant, await delegations_in_force(session, plan))
    row = Delegation(
        delegator=delegator,
        delegate=delegate,
        role=role,
        valid_from=valid_from,
        valid_to=valid_to,
        reason=unicodedata.normalize("NFC", reason),
        created_by=by,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    await audit.append(
        session,
        actor=by,
        action="delegation.created",
        entity="delegation",
        entity_id=str(row.id),
        data={
            "delegator": delegator,
            "delegate": delegate,
            "role": role,
            "valid_from": valid_from.isoformat(),
            "valid_to": valid_to.isoformat(),
        },
    )
    return row


async def revoke_delegation(session: AsyncSession, *, delegation_id: uuid.UUID, by: str, now: dt.datetime) -> bool:
    revoked = await session.execute(
        update(Delegation)
        .where(Delegation.id == delegation_id, Delegation.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(revoked) == 1:
        await audit.append(
            session, actor=by, action="delegation.revoked", entity="delegation", entity_id=str(delegation_id), data={}
        )
        return True
    return False


async def list_delegations(session: AsyncSession, *, include_revoked: bool = False) -> list[Delegation]:
    query = select(Delegation).order_by(Delegation.valid_from)
    if not include_revoked:
        query = query.where(Delegation.revoked_at.is_(None))
    return list((await session.execute(query)).scalars())
