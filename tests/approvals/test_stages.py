"""A stage wakes its cycle's run once, when its last branch settles: not for a branch sent back
(its unit is asked to resubmit in the decision's own transaction), not for any branch before
the last, and exactly once when the last two settle at the same moment (PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import psycopg
import pytest
from sqlalchemy import select

from approvals.models import ApprovalRequest, CycleStage, Wake
from approvals.routing import steps
from approvals.routing.decisions import decide, settle_request
from approvals.routing.stages import enqueue_wake, stage_state
from approvals.statuses import Outcome, RequestStatus
from tests.approvals.test_routing import PLAN, SECRET, TTL, token_of
from tests.conftest import pg_conninfo, postgres_base_url

NOW = dt.datetime(2026, 8, 1, 3, tzinfo=dt.UTC)
BRANCHES = ["dept", "ppc", "old_dept"]  # any agency ids: a stage's branches are units


async def _open_branches(db, n: int = 3, stage: str = "s_any", subjects: list[str] = BRANCHES):
    async with db.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="test", period=f"w-{uuid.uuid4().hex[:12]}", starts_on=dt.date(2026, 7, 1)
        )
        opened = [
            await steps.open_request(
                session,
                plan=PLAN,
                secret=SECRET,
                cycle=cycle,
                stage_id=stage,
                subject=subject,
                waiter_ref=None,
                link_ttl=TTL,
                now=NOW,
            )
            for subject in subjects[:n]
        ]
    return cycle, opened


async def _wakes(db, cycle_id) -> list[tuple[str, str, str]]:
    async with db.sessions() as session:
        return [
            (w.stage, w.reason, w.status)
            for w in (await session.execute(select(Wake).where(Wake.cycle_id == cycle_id).order_by(Wake.id))).scalars()
        ]


async def _settle(db, request_id, outcome: Outcome) -> None:
    async with db.transaction() as session:
        request = await steps.lock_request(session, request_id)
        await settle_request(session, request=request, outcome=outcome, now=NOW)


async def test_the_run_is_woken_once_when_the_last_branch_settles(database):
    cycle, opened = await _open_branches(database)
    await _settle(database, opened[0].request.id, Outcome.approve)
    await _settle(database, opened[1].request.id, Outcome.reject)
    assert await _wakes(database, cycle.id) == []  # one branch is still open
    async with database.sessions() as session:
        state = await stage_state(session, cycle.id, "s_any")
    assert (state.settled, state.branches, state.status.value) == (False, 3, "waiting")

    await _settle(database, opened[2].request.id, Outcome.approve)
    assert await _wakes(database, cycle.id) == [("s_any", "stage_settled", "queued")]
    async with database.sessions() as session:
        state = await stage_state(session, cycle.id, "s_any")
        recorded = (
            await session.execute(
                select(CycleStage.status).where(CycleStage.cycle_id == cycle.id, CycleStage.stage == "s_any")
            )
        ).scalar_one()
    assert (state.settled, state.any_approved, state.status.value) == (True, True, "rejected")
    assert recorded == "rejected"  # written in the same transaction as the last settlement


async def test_a_branch_sent_back_wakes_nobody_and_its_next_round_counts(database):
    cycle, opened = await _open_branches(database, n=2)
    await _settle(database, opened[0].request.id, Outcome.approve)
    token = token_of(opened[1].new_assignments[0].assignment)
    async with database.transaction() as session:
        result = await decide(
            session, token=token, outcome=Outcome.request_changes, comment="Bổ sung", now=NOW, plan=PLAN, secret=SECRET
        )
    assert result.asked is not None and result.asked.official.id == "clerk1"  # asked in the same transaction
    assert await _wakes(database, cycle.id) == []
    async with database.sessions() as session:
        assert (await stage_state(session, cycle.id, "s_any")).status.value == "changes_requested"

    async with database.transaction() as session:  # the unit resubmits: the next round is the branch now
        second = await steps.reopen_after_changes(
            session,
            plan=PLAN,
            secret=SECRET,
            previous_id=opened[1].request.id,
            data={"text": "Đã bổ sung"},
            requested_by="clerk1",
            waiter_ref=None,
            link_ttl=TTL,
            now=NOW,
        )
    async with database.sessions() as session:
        state = await stage_state(session, cycle.id, "s_any")
    assert (state.branches, state.settled) == (2, False)
    assert await _wakes(database, cycle.id) == []
    await _settle(database, second.request.id, Outcome.approve)
    assert await _wakes(database, cycle.id) == [("s_any", "stage_settled", "queued")]
    async with database.sessions() as session:
        assert (await stage_state(session, cycle.id, "s_any")).status.value == "done"


async def test_a_second_settlement_reason_while_one_wake_waits_adds_nothing(database):
    from approvals.routing.stages import WakeReason, enqueue_wake

    cycle, opened = await _open_branches(database, n=1)
    await _settle(database, opened[0].request.id, Outcome.approve)
    async with database.transaction() as session:
        await enqueue_wake(session, cycle_id=cycle.id, stage="s_any", reason=WakeReason.stage_settled, now=NOW)
    assert await _wakes(database, cycle.id) == [("s_any", "stage_settled", "queued")]


async def _waiting_for_a_lock(schema_hint: str) -> bool:
    with psycopg.connect(pg_conninfo(postgres_base_url()), autocommit=True) as conn:
        return (
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                (f"%{schema_hint}%",),
            ).fetchone()[0]
            > 0
        )


@pytest.mark.postgres_only
async def test_the_last_two_branches_settling_at_once_wake_the_run_exactly_once(database):
    """Each settlement locks the stage's row before it counts: the second waits for the first
    to commit, then sees every branch settled. Without the lock each would see the other still
    open, and the run would never be woken."""
    for _trial in range(5):
        cycle, opened = await _open_branches(database, n=2)
        async with database.transaction() as first:
            request = await steps.lock_request(first, opened[0].request.id)
            await settle_request(first, request=request, outcome=Outcome.approve, now=NOW)
            second = asyncio.create_task(_settle(database, opened[1].request.id, Outcome.approve))
            deadline = asyncio.get_running_loop().time() + 30
            while not await _waiting_for_a_lock("cycle_stage"):  # the second now waits on the stage's lock
                assert asyncio.get_running_loop().time() < deadline, "the second settlement never waited"
                await asyncio.sleep(0.05)
        await second
        assert await _wakes(database, cycle.id) == [("s_any", "stage_settled", "queued")]
        async with database.sessions() as session:
            statuses = sorted(
                (
                    await session.execute(select(ApprovalRequest.status).where(ApprovalRequest.cycle_id == cycle.id))
                ).scalars()
            )
        assert statuses == [RequestStatus.approved.value] * 2


async def test_one_connection_queues_wake_after_wake(database):
    """A web process settles stage after stage on the same pooled connection. PostgreSQL plans a
    statement generically after a few runs of it: the wake's insert must still name the queue's
    partial unique index (a bound predicate could not, and every later settlement failed)."""
    cycles = []
    for _ in range(3):
        cycle, _ = await _open_branches(database, n=1)
        cycles.append(cycle)
    async with database.transaction() as session:
        for round_ in range(12):  # past psycopg's prepare threshold and PostgreSQL's five custom plans
            for cycle in cycles:
                await enqueue_wake(session, cycle_id=cycle.id, stage=f"s{round_ % 4}", reason="stage_settled", now=NOW)
    for cycle in cycles:  # one queued wake per stage, however often it was asked for
        assert sorted(await _wakes(database, cycle.id)) == [(f"s{i}", "stage_settled", "queued") for i in range(4)]


@pytest.mark.parametrize(
    "outcome, status, woken",
    [
        (Outcome.approve, "done", True),
        (Outcome.reject, "rejected", True),
        (RequestStatus.expired, "expired", True),
        (Outcome.request_changes, "changes_requested", False),
    ],
)
async def test_a_stage_of_one_branch_records_its_status_in_the_settlement(database, outcome, status, woken):
    """A stage with one branch (not a fan-out, not a report: subject '') records its status with
    one statement, without locking the stage and counting its rounds: the same status, the same
    audit row and the same wake as the counting path gives a stage of several branches."""
    from approvals.models import AuditEvent

    cycle, (opened,) = await _open_branches(database, n=1, subjects=[""])
    await _settle(database, opened.request.id, outcome)
    async with database.sessions() as session:
        recorded = (
            await session.execute(
                select(CycleStage).where(CycleStage.cycle_id == cycle.id, CycleStage.stage == "s_any")
            )
        ).scalar_one()
        audited = list(
            (
                await session.execute(
                    select(AuditEvent.data).where(
                        AuditEvent.action == "stage.recorded", AuditEvent.entity_id == str(recorded.id)
                    )
                )
            ).scalars()
        )
        state = await stage_state(session, cycle.id, "s_any")
    assert recorded.status == status == state.status.value  # what counting the rounds gives too
    assert audited == [{"stage": "s_any", "status": status}]
    assert await _wakes(database, cycle.id) == ([("s_any", "stage_settled", "queued")] if woken else [])


async def test_a_stage_of_one_branch_kept_by_the_chain_is_not_overwritten(database):
    """A stage the chain recorded itself (lapsed: it went on without it) keeps that status when
    its late branch settles."""
    from sqlalchemy import update

    cycle, (opened,) = await _open_branches(database, n=1, subjects=[""])
    async with database.transaction() as session:
        await session.execute(update(CycleStage).where(CycleStage.cycle_id == cycle.id).values(status="lapsed"))
    await _settle(database, opened.request.id, Outcome.approve)
    async with database.sessions() as session:
        assert (
            await session.execute(select(CycleStage.status).where(CycleStage.cycle_id == cycle.id))
        ).scalar_one() == "lapsed"
