"""The officials' daily digest: once a day, from the plan's morning hour, each official with open
steps hears of all of them in one email (with each step's link and one link to their queue). The
sweep asks who is due one; the email's key (official and local day) makes it once a day however
many sweeps run.

A rehearsal's steps are left out: its planned days pass in seconds, so a digest of the wall
clock's day would list steps long gone by the time it is read (the rehearsal's own emails carry
each step's link, marked as a rehearsal)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.clock.deadlines import local_day
from approvals.models import ApprovalRequest, Assignment, Cycle
from approvals.plan.people import Official
from approvals.plan.schema import Plan
from approvals.routing.queue import MAX_STEPS, OpenStep
from approvals.statuses import AssignmentStatus, RequestStatus

_EVERY_OPEN_STEP = (
    select(Assignment, ApprovalRequest, Cycle)
    .join(ApprovalRequest, ApprovalRequest.id == Assignment.request_id)
    .join(Cycle, Cycle.id == ApprovalRequest.cycle_id)
    .where(
        Assignment.status == AssignmentStatus.pending.value,
        Assignment.expires_at > bindparam("now"),
        ApprovalRequest.status == RequestStatus.pending.value,
        Cycle.rehearsal_speed.is_(None),
    )
    .order_by(Assignment.official_id, ApprovalRequest.due_at, ApprovalRequest.stage, ApprovalRequest.subject)
)


@dataclass(frozen=True)
class DailyDigest:
    """One official's open steps on one local day, the soonest due first."""

    official: Official
    day: dt.date
    steps: list[OpenStep]


def digest_due(plan: Plan, now: dt.datetime, *, hour: int) -> bool:
    """Whether the plan's local time has reached the digest's hour of the day."""
    return now.astimezone(plan.tz).hour >= hour


async def daily_digests(session: AsyncSession, *, plan: Plan, now: dt.datetime, hour: int) -> list[DailyDigest]:
    """Every official with an open step, once the plan's day has reached `hour` (else nobody yet).
    An official no longer in the plan file is left out (nobody to email)."""
    if not digest_due(plan, now, hour=hour):
        return []
    found: dict[str, list[OpenStep]] = defaultdict(list)
    for row in (await session.execute(_EVERY_OPEN_STEP, {"now": now})).all():
        steps = found[row[0].official_id]
        if len(steps) < MAX_STEPS:
            steps.append(OpenStep(*row))
    day = local_day(plan, now)
    return [
        DailyDigest(official, day, steps)
        for official_id, steps in found.items()
        if (official := plan.official(official_id)) is not None
    ]
