"""An official's queue: every step still asked of them (their assignment pending and its link
live, its request open for decisions), in every cycle, and the filters the queue page offers.
Reads only; a bulk decision decides each step through `decisions.decide` (`Queued`)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.models import ApprovalRequest, Assignment, Cycle
from approvals.statuses import AssignmentStatus, RequestStatus

MAX_STEPS = 500  # an official with more open steps than this sees the most urgent ones

_OPEN_STEPS = (
    select(Assignment, ApprovalRequest, Cycle)
    .join(ApprovalRequest, ApprovalRequest.id == Assignment.request_id)
    .join(Cycle, Cycle.id == ApprovalRequest.cycle_id)
    .where(
        Assignment.official_id == bindparam("official_id"),
        Assignment.status == AssignmentStatus.pending.value,
        Assignment.expires_at > bindparam("now"),
        ApprovalRequest.status == RequestStatus.pending.value,
    )
    .order_by(ApprovalRequest.due_at, ApprovalRequest.stage, ApprovalRequest.subject, Assignment.id)
    .limit(MAX_STEPS)
)


@dataclass(frozen=True)
class OpenStep:
    assignment: Assignment
    request: ApprovalRequest
    cycle: Cycle

    def overdue(self, now: dt.datetime) -> bool:
        return self.request.due_at <= now


@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows of an official's open steps: "" for any."""

    cycle: str = ""  # a cycle's id
    stage: str = ""  # a stage's id
    unit: str = ""  # the acting agency (the unit whose step it is)
    overdue: bool = False

    def keeps(self, step: OpenStep, now: dt.datetime) -> bool:
        return (
            (not self.cycle or str(step.cycle.id) == self.cycle)
            and (not self.stage or step.request.stage == self.stage)
            and (not self.unit or step.request.acting_agency == self.unit)
            and (not self.overdue or step.overdue(now))
        )


async def open_steps(session: AsyncSession, *, official_id: str, now: dt.datetime) -> list[OpenStep]:
    """Every step asked of the official and still open, the soonest due first."""
    rows = await session.execute(_OPEN_STEPS, {"official_id": official_id, "now": now})
    return [OpenStep(*row) for row in rows.all()]


def chosen(steps: Sequence[OpenStep], ids: Sequence[uuid.UUID]) -> list[OpenStep]:
    """The steps among `steps` whose assignments are named, in the queue's order."""
    wanted = set(ids)
    return [step for step in steps if step.assignment.id in wanted]
