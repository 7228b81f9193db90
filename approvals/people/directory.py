"""Who decides: roles resolve to officials through the plan's directory on the day,
following delegations in force, never to the step's own requester."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.models import Delegation
from approvals.plan.delegation_rules import DelegationLike, Grant, chain
from approvals.plan.people import Official
from approvals.plan.schema import Plan


@dataclass(frozen=True)
class Approver:
    official: Official
    role: str
    on_behalf_of: str | None  # the role holder, when a delegate acts


def same_name(a: str, b: str) -> bool:
    """Vietnamese names compare equal whether typed in NFC or NFD (stored NFC)."""
    return unicodedata.normalize("NFC", a).casefold() == unicodedata.normalize("NFC", b).casefold()


def resolvable(plan: Plan, official_id: str, on: dt.date) -> Official | None:
    """The official if the directory knows them on that day (and their agency exists then)."""
    official = plan.official(official_id)
    if official is None or not official.valid_on(on) or not plan.agency(official.agency).valid_on(on):
        return None
    return official


def resolve_approvers(
    plan: Plan,
    roles: Sequence[str],
    *,
    on: dt.date,
    delegations: Sequence[DelegationLike],
    requester: str | None,
    unit: str | None = None,
) -> list[Approver]:
    """One approver per distinct official, in role order.

    Separation of duties: a holder who submitted the step is left out, and so is any
    chain through them; a delegation that would hand the step back to its requester
    (or to someone the directory cannot resolve) stops before them.
    """
    chosen: dict[str, Approver] = {}
    for role in roles:
        for holder in plan.holders(role, on, unit=unit or None):
            if holder.id == requester:
                continue
            path = chain(holder.id, delegations, role=role, on=on)
            acting = holder
            for official_id in path[1:]:
                official = resolvable(plan, official_id, on)
                if official_id == requester or official is None:
                    break
                acting = official
            if acting.id not in chosen:
                chosen[acting.id] = Approver(acting, role, holder.id if acting.id != holder.id else None)
    return list(chosen.values())


def acting_for(
    plan: Plan,
    official_id: str,
    *,
    role: str,
    on: dt.date,
    delegations: Sequence[DelegationLike],
    requester: str | None,
) -> list[Official]:
    """Who may act on an official's step on a day: the official, when the directory knows them,
    then each delegate down the chain of delegations in force for the role, as `resolve_approvers`
    follows it (it stops before the step's requester, or anyone the directory cannot resolve)."""
    own = resolvable(plan, official_id, on)
    acting = [own] if own is not None and official_id != requester else []
    for delegate_id in chain(official_id, delegations, role=role, on=on)[1:]:
        delegate = resolvable(plan, delegate_id, on)
        if delegate_id == requester or delegate is None:
            break
        acting.append(delegate)
    return acting


async def delegations_in_force(session: AsyncSession, plan: Plan) -> list[DelegationLike]:
    """The plan file's delegations and the unrevoked ones made through the API."""
    rows = (await session.execute(select(Delegation).where(Delegation.revoked_at.is_(None)))).scalars()
    made = [Grant(d.delegator, d.delegate, d.role, d.valid_from, d.valid_to) for d in rows]
    return [*plan.delegations, *made]
