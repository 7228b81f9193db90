"""Exactly one outcome under contention, on PostgreSQL (SQLite serialises writers and
ignores row locks, so a race there proves nothing: these tests refuse to run on it). Each on a
database of its own: its hundreds of cycles and their wakes are no other test's leftovers."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select

from approvals.models import ApprovalRequest, AuditEvent, Cycle, Decision
from approvals.plan.people import Official
from approvals.plan.values import Text
from approvals.routing import steps
from approvals.routing.decisions import decide
from approvals.running.sweep import EventKind, due_step, sweep, sweep_request
from approvals.statuses import Outcome
from tests.approvals.test_routing import PLAN, SECRET, TTL, token_of

TRIALS = 200
PARALLEL = 50
DEPUTIES = [
    Official(
        id=f"deputy_x{i}",
        name=f"Phó giám đốc {i}",
        email=f"pgd{i}@t.example",
        agency="dept",
        title=Text(vi="PGĐ", en="Deputy"),
        roles=["deputy"],
    )
    for i in range(PARALLEL)
]
CROWDED = PLAN.model_copy(update={"officials": [*PLAN.officials, *DEPUTIES]})
NOW = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)


async def _open(db, stage: str, plan=CROWDED, now=NOW):
    async with db.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="test", period=f"c-{uuid.uuid4().hex[:12]}", starts_on=dt.date(2026, 7, 1)
        )
        opened = await steps.open_request(
            session, plan=plan, secret=SECRET, cycle=cycle, stage_id=stage, waiter_ref=None, link_ttl=TTL, now=now
        )
    return opened


async def _try_decide(db, token: str, outcome: Outcome, now=NOW) -> bool:
    try:
        async with db.transaction() as session:
            await decide(
                session, token=token, outcome=outcome, comment="đồng thời", now=now, plan=CROWDED, secret=SECRET
            )
        return True
    except (steps.InvalidLink, steps.AlreadyDecided):
        return False


async def _counts(db, request_id) -> tuple[int, int, str]:
    async with db.sessions() as session:
        decisions = (
            await session.execute(select(func.count()).select_from(Decision).where(Decision.request_id == request_id))
        ).scalar_one()
        audited = (
            await session.execute(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.entity_id == str(request_id), AuditEvent.action == "decision.recorded")
            )
        ).scalar_one()
        status = (await session.get(ApprovalRequest, request_id)).status
    return decisions, audited, status


@pytest.mark.postgres_only
@pytest.mark.stress  # 200 trials: the full suite's; the fast tier keeps the race with the sweep below
async def test_fifty_parallel_decisions_on_one_request_give_one_outcome(private_database):
    database = private_database
    for trial in range(TRIALS):
        opened = await _open(database, "s_any")
        tokens = [token_of(n.assignment) for n in opened.new_assignments][: PARALLEL // 2]
        tokens += tokens  # and every link double-clicked
        outcomes = [Outcome.approve if i % 3 else Outcome.reject for i in range(len(tokens))]
        won = await asyncio.gather(*(_try_decide(database, t, o) for t, o in zip(tokens, outcomes, strict=True)))
        decisions, audited, status = await _counts(database, opened.request.id)
        assert sum(won) == 1, f"trial {trial}: {sum(won)} winners"
        assert (decisions, audited) == (1, 1), f"trial {trial}"
        assert status in ("approved", "rejected")


@pytest.mark.postgres_only
async def test_a_decision_racing_the_sweep_never_gives_two_outcomes(private_database):
    database = private_database
    due_passed = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)  # s_expire is due 14 days after 1 July
    results = {"decision": 0, "expired": 0}
    for trial in range(TRIALS):
        opened = await _open(database, "s_expire", plan=PLAN, now=dt.datetime(2026, 7, 2, tzinfo=dt.UTC))
        token = token_of(opened.new_assignments[0].assignment)

        async def run_sweep(opened=opened):
            try:
                async with database.transaction() as session:
                    return await sweep_request(
                        session, plan=PLAN, secret=SECRET, request_id=opened.request.id, now=due_passed, link_ttl=TTL
                    )
            except steps.AlreadyDecided:
                return None

        decided, event = await asyncio.gather(
            _try_decide(database, token, Outcome.approve, now=due_passed), run_sweep()
        )
        decisions, _, status = await _counts(database, opened.request.id)
        assert decided != (event is not None), f"trial {trial}: both or neither won"
        assert (status, decisions) == (("approved", 1) if decided else ("expired", 0)), f"trial {trial}"
        results["decision" if decided else "expired"] += 1
    assert sum(results.values()) == TRIALS


@pytest.mark.postgres_only
async def test_a_request_being_decided_does_not_hold_up_the_sweep_of_the_others(private_database):
    """A pass locks only the requests with a step due: one whose row a decision holds, with
    nothing due, is read and passed over, and the pass goes on to the step that is due."""
    database = private_database
    overdue = await _open(database, "s_expire", plan=PLAN, now=dt.datetime(2026, 7, 2, tzinfo=dt.UTC))
    being_decided = await _open(database, "s_expire", plan=PLAN, now=NOW)
    async with database.transaction() as holder:
        request = await steps.lock_request(holder, being_decided.request.id)  # as a decision being recorded does
        cycle = await holder.get(Cycle, request.cycle_id)
        assert due_step(PLAN, request, cycle, steps.stage_of(PLAN, "test", "s_expire"), NOW) is None
        # Before a pass locked every open request, this one waited on the holder, which waits on it.
        events = await asyncio.wait_for(sweep(database, plan=PLAN, secret=SECRET, now=NOW, link_ttl=TTL), 60)
    assert [(e.kind, e.request.id) for e in events] == [(EventKind.expired, overdue.request.id)]
    assert (await _counts(database, being_decided.request.id))[2] == "pending"
