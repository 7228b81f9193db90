"""The one escalation (`approvals.running.chasing.escalate`), on every stage of the shipped plan that
escalates, one of each kind: the sweep at the due time and a coordinator before or after it
bring in the same superior, write the same audit row, and set the expiry by one rule (the
stage's grace after the due time, or after the escalation when that comes later)."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import pytest
from sqlalchemy import select, update

from approvals.clock.deadlines import CycleClock
from approvals.config import PACKAGED_PLAN
from approvals.coordination import escalate as escalate_now
from approvals.models import ApprovalRequest, Assignment, AuditEvent
from approvals.plan import load_plan
from approvals.routing import steps
from approvals.routing.steps import AlreadyDecided
from approvals.running.chasing import escalate, escalation_expiry
from approvals.running.sweep import sweep_request

PLAN = load_plan(PACKAGED_PLAN)
SECRET = secrets.token_bytes(32)
TTL = dt.timedelta(days=30)
NOW = dt.datetime(2026, 12, 5, 3, 0, tzinfo=dt.UTC)
# (cycle kind, stage, its kind, the superior it brings in today)
ESCALATING = [
    ("problem_escalation", "ppc_resolution", "approval", "ppc_chair"),
    ("annual", "materials", "submission", "dost_director"),
    ("annual", "outlet_plans", "fan_out", "ppc_vice_chair"),
    ("annual", "finance_allocation", "budget", "ppc_chair"),
    ("annual", "annual_report", "report", "ppc_vice_chair"),
    ("annual", "consolidated_report", "consolidation", "ppc_vice_chair"),
]
WHEN = {  # who escalates, and the due time relative to the moment of escalating
    "the sweep, late": ("system", dt.timedelta(hours=-5)),
    "a coordinator, before the due time": ("api:coordinator", dt.timedelta(days=3)),
    "a coordinator, after it": ("api:coordinator", dt.timedelta(days=-2)),
}


def test_every_kind_that_escalates_is_here():
    kinds = {
        stage.kind.value
        for cycle in PLAN.cycles
        for stage in cycle.stages
        if stage.escalate_to and stage.timeout_policy.value == "escalate"
    }
    assert kinds == {kind for _, _, kind, _ in ESCALATING}


@pytest.mark.parametrize("speed", [1.0, 17_520.0], ids=["as_planned", "rehearsed"])
def test_the_expiry_runs_from_the_due_time_or_from_a_later_escalation(speed):
    """The grace counts the cycle's own days: a rehearsal at 17,520 times (a year in 30 minutes)
    gives 7 planned days as 34.520547 wall seconds (rounded down to the microsecond)."""
    stage = next(s for c in PLAN.cycles for s in c.stages if s.id == "materials")
    clock = CycleClock(speed=speed, start=NOW, began=NOW) if speed != 1.0 else CycleClock()
    grace = dt.timedelta(microseconds=stage.escalation_days * 86_400_000_000 // speed)  # rounded down
    later = NOW + dt.timedelta(seconds=30)
    assert escalation_expiry(stage, due_at=later, now=NOW, clock=clock) == later + grace
    assert escalation_expiry(stage, due_at=NOW - dt.timedelta(days=1), now=NOW, clock=clock) == NOW + grace
    no_grace = stage.model_copy(update={"escalation_days": 0})
    assert escalation_expiry(no_grace, due_at=NOW, now=NOW, clock=clock) is None


async def _pending(database, cycle_kind: str, stage_id: str, due_at: dt.datetime) -> uuid.UUID:
    async with database.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind=cycle_kind, period=f"e-{uuid.uuid4().hex[:12]}", starts_on=dt.date(2026, 1, 1)
        )
        opened = await steps.open_request(
            session,
            plan=PLAN,
            secret=SECRET,
            cycle=cycle,
            stage_id=stage_id,
            subject="dpi",
            waiter_ref=None,
            link_ttl=TTL,
            now=NOW - dt.timedelta(days=10),
        )
        await session.execute(
            update(ApprovalRequest).where(ApprovalRequest.id == opened.request.id).values(due_at=due_at)
        )
    return opened.request.id


@pytest.mark.parametrize("when", list(WHEN))
@pytest.mark.parametrize(
    ("cycle_kind", "stage_id", "kind", "superior"), ESCALATING, ids=[kind for _, _, kind, _ in ESCALATING]
)
async def test_an_escalation_brings_in_the_superior_once_with_one_expiry_rule(
    database, cycle_kind, stage_id, kind, superior, when
):
    actor, due_in = WHEN[when]
    due_at = NOW + due_in
    request_id = await _pending(database, cycle_kind, stage_id, due_at)
    stage = next(s for c in PLAN.cycles for s in c.stages if s.id == stage_id)

    async with database.transaction() as session:
        if actor == "system":
            event = await sweep_request(session, plan=PLAN, secret=SECRET, request_id=request_id, now=NOW, link_ttl=TTL)
            notified = [n.official.id for n in event.notify]
        else:
            acted = await escalate_now(
                session, plan=PLAN, secret=SECRET, request_id=request_id, by=actor, now=NOW, link_ttl=TTL
            )
            notified = [n.official.id for n in acted.notify]

    async with database.sessions() as session:
        request = await session.get(ApprovalRequest, request_id)
        superiors = list(
            (
                await session.execute(
                    select(Assignment.official_id).where(
                        Assignment.request_id == request_id, Assignment.official_id == superior
                    )
                )
            ).scalars()
        )
        (audit,) = (
            await session.execute(
                select(AuditEvent).where(
                    AuditEvent.entity_id == str(request_id), AuditEvent.action == "request.escalated"
                )
            )
        ).scalars()
    grace = dt.timedelta(days=stage.escalation_days)
    assert notified == superiors == [superior]
    assert (request.escalated_at, request.told_at) == (NOW, NOW)
    assert request.expires_at == max(NOW, due_at) + grace
    assert audit.actor == actor and audit.data["to"] == [superior]
    assert audit.data["expires_at"] == request.expires_at.isoformat()
    assert audit.data.get("manual", False) is (actor != "system")

    async with database.transaction() as session:  # a second escalation is refused and changes nothing
        locked = await steps.lock_request(session, request_id)
        with pytest.raises(AlreadyDecided):
            await escalate(
                session,
                plan=PLAN,
                secret=SECRET,
                request=locked,
                stage=stage,
                actor=actor,
                now=NOW + dt.timedelta(days=1),
                link_ttl=TTL,
            )
    async with database.sessions() as session:
        assert (await session.get(ApprovalRequest, request_id)).expires_at == max(NOW, due_at) + grace
