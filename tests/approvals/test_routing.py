"""Routing on a small plan: policies, delegation, separation of duties, reassignment,
routing by amount, re-opening after changes. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import secrets
import unicodedata
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from approvals.errors import Refused
from approvals.models import ApprovalRequest, Assignment, AuditEvent, Decision, Delegation
from approvals.people.directory import resolve_approvers, same_name
from approvals.plan import load_plan
from approvals.plan.delegation_rules import DelegationRefused, Grant, check_new
from approvals.routing import steps
from approvals.routing.decisions import decide
from approvals.statuses import Outcome
from approvals.tokens import derive_token

SECRET = secrets.token_bytes(32)
PLAN = load_plan(Path(__file__).parent / "routing-plan.yaml")
NOW = dt.datetime(2026, 7, 5, 3, 0, tzinfo=dt.UTC)  # head1 has delegated 'head' to deputy1 (1-14 July)
TTL = dt.timedelta(days=60)
A, R, C = Outcome.approve, Outcome.reject, Outcome.request_changes


async def open_stage(db, stage: str, *, now=NOW, requested_by=None, data=None, plan=PLAN):
    async with db.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="test", period=f"r-{uuid.uuid4().hex[:12]}", starts_on=dt.date(2026, 7, 1)
        )
        return await steps.open_request(
            session,
            plan=plan,
            secret=SECRET,
            cycle=cycle,
            stage_id=stage,
            waiter_ref=None,
            link_ttl=TTL,
            now=now,
            requested_by=requested_by,
            data=data,
        )


def token_of(assignment: Assignment) -> str:
    return derive_token(SECRET, assignment.id, assignment.token_generation)


async def assignments(db, request_id) -> list[Assignment]:
    async with db.sessions() as session:
        return list(
            (
                await session.execute(
                    select(Assignment).where(Assignment.request_id == request_id).order_by(Assignment.position)
                )
            ).scalars()
        )


async def decide_as(db, assignment: Assignment, outcome: Outcome, comment: str = "ý kiến", now=NOW):
    async with db.transaction() as session:
        return await decide(
            session, token=token_of(assignment), outcome=outcome, comment=comment, now=now, plan=PLAN, secret=SECRET
        )


def by_official(rows: list[Assignment]) -> dict[str, Assignment]:
    return {a.official_id: a for a in rows}


async def test_all_of_ends_at_the_first_rejection(database):
    opened = await open_stage(database, "s_all")
    people = by_official(await assignments(database, opened.request.id))
    assert set(people) == {"deputy1", "deputy2", "deputy3"}
    assert (await decide_as(database, people["deputy1"], A)).settled is None
    result = await decide_as(database, people["deputy2"], R, "Chưa đạt")
    assert result.settled is R
    with pytest.raises(steps.InvalidLink):  # the third link is closed with the request
        await decide_as(database, people["deputy3"], A)


async def test_quorum_fails_as_soon_as_it_cannot_be_reached(database):
    opened = await open_stage(database, "s_quorum")
    people = by_official(await assignments(database, opened.request.id))
    assert (await decide_as(database, people["board1"], R, "không")).settled is None
    assert (await decide_as(database, people["board2"], R, "không")).settled is R  # 2 of 3 impossible now


async def test_quorum_approves_with_two_of_three(database):
    opened = await open_stage(database, "s_quorum")
    people = by_official(await assignments(database, opened.request.id))
    await decide_as(database, people["board3"], A)
    assert (await decide_as(database, people["board1"], A)).settled is A


async def test_sequence_asks_the_next_only_after_an_approval(database):
    opened = await open_stage(database, "s_sequence", now=dt.datetime(2026, 8, 1, tzinfo=dt.UTC))
    rows = await assignments(database, opened.request.id)
    assert [(a.official_id, a.status) for a in rows] == [("head1", "pending"), ("vice_chair1", "waiting")]
    assert [n.official.id for n in opened.new_assignments] == ["head1"]  # only the first is emailed
    with pytest.raises(steps.InvalidLink):
        await decide_as(database, rows[1], A)  # not asked yet: no live link
    result = await decide_as(database, rows[0], A)
    assert result.settled is None and [n.official.id for n in result.activated] == ["vice_chair1"]
    rows = await assignments(database, opened.request.id)
    assert (await decide_as(database, rows[1], A)).settled is A


async def test_sequence_after_a_reassign_keeps_its_order(database):
    opened = await open_stage(database, "s_sequence", now=dt.datetime(2026, 8, 1, tzinfo=dt.UTC))
    first, second = await assignments(database, opened.request.id)
    async with database.transaction() as session:
        moved = await steps.reassign(
            session,
            plan=PLAN,
            secret=SECRET,
            assignment_id=second.id,
            to_official="chair1",
            by="coordinator:test",
            now=NOW,
            link_ttl=TTL,
        )
    assert moved.assignment.status == "waiting"  # still not asked: the head decides first
    result = await decide_as(database, first, A)
    assert [n.official.id for n in result.activated] == ["chair1"]
    rows = {a.official_id: a for a in await assignments(database, opened.request.id)}
    assert rows["vice_chair1"].status == "reassigned" and rows["vice_chair1"].replaced_by == moved.assignment.id
    assert (await decide_as(database, rows["chair1"], A)).settled is A


async def test_reassign_kills_the_old_link_and_audits_it(database):
    opened = await open_stage(database, "s_budget", now=dt.datetime(2026, 8, 1, tzinfo=dt.UTC))
    (old,) = await assignments(database, opened.request.id)
    async with database.transaction() as session:
        new = await steps.reassign(
            session,
            plan=PLAN,
            secret=SECRET,
            assignment_id=old.id,
            to_official="deputy2",
            by="coordinator:lan",
            now=NOW,
            link_ttl=TTL,
        )
    with pytest.raises(steps.InvalidLink):
        await decide_as(database, old, A)
    assert (await decide_as(database, new.assignment, A)).settled is A
    async with database.sessions() as session:
        actions = [
            e.action
            for e in (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.entity_id == str(opened.request.id)).order_by(AuditEvent.id)
                )
            ).scalars()
        ]
    assert actions == ["request.opened", "assignment.reassigned", "decision.recorded"]


async def test_a_budget_above_the_threshold_also_needs_the_vice_chair(database):
    small = await open_stage(
        database, "s_budget", data={"amount": 120_000_000}, now=dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
    )
    big = await open_stage(
        database, "s_budget", data={"amount": 1_250_000_000}, now=dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
    )
    assert small.request.policy == "any" and [n.official.id for n in small.new_assignments] == ["head1"]
    assert big.request.policy == "all"
    assert sorted(n.official.id for n in big.new_assignments) == ["head1", "vice_chair1"]


async def test_a_delegate_decides_and_both_names_are_recorded(database):
    opened = await open_stage(database, "s_budget")  # 5 July: head1 is away, deputy1 acts for her
    (only,) = await assignments(database, opened.request.id)
    assert (only.official_id, only.on_behalf_of) == ("deputy1", "head1")
    result = await decide_as(database, only, A)
    assert (result.decision.official_id, result.decision.on_behalf_of) == ("deputy1", "head1")
    async with database.sessions() as session:
        audit_row = (
            await session.execute(
                select(AuditEvent).where(
                    AuditEvent.entity_id == str(opened.request.id), AuditEvent.action == "decision.recorded"
                )
            )
        ).scalar_one()
    assert audit_row.data["official"] == "deputy1" and audit_row.data["on_behalf_of"] == "head1"


async def test_the_requester_never_approves_their_own_step(database):
    opened = await open_stage(database, "s_any", requested_by="deputy3")  # deputy3 is also a clerk
    assert sorted(n.official.id for n in opened.new_assignments) == ["deputy1", "deputy2"]
    # A delegation to the requester does not hand the step back to them: the holder keeps it.
    async with database.transaction() as session:
        session.add(
            Delegation(
                delegator="deputy1",
                delegate="deputy3",
                role="deputy",
                valid_from=dt.date(2026, 7, 1),
                valid_to=dt.date(2026, 7, 31),
                created_by="test",
            )
        )
    try:
        again = await open_stage(database, "s_any", requested_by="deputy3")
        assert sorted((n.official.id, n.assignment.on_behalf_of) for n in again.new_assignments) == [
            ("deputy1", None),
            ("deputy2", None),
        ]
    finally:
        async with database.transaction() as session:
            for row in (await session.execute(select(Delegation).where(Delegation.created_by == "test"))).scalars():
                await session.delete(row)


async def test_reassigning_to_the_requester_or_an_unknown_official_is_refused(database):
    opened = await open_stage(database, "s_any", requested_by="deputy3")
    first = opened.new_assignments[0].assignment
    for target in ("deputy3", "nobody", "old_head"):  # old_head's agency ended in February 2025
        with pytest.raises(steps.Refused):
            async with database.transaction() as session:
                await steps.reassign(
                    session,
                    plan=PLAN,
                    secret=SECRET,
                    assignment_id=first.id,
                    to_official=target,
                    by="coordinator:test",
                    now=NOW,
                    link_ttl=TTL,
                )


async def test_an_approver_who_left_the_directory_is_refused(database):
    opened = await open_stage(database, "s_budget", now=dt.datetime(2025, 2, 20, tzinfo=dt.UTC))
    people = by_official(await assignments(database, opened.request.id))
    assert set(people) == {"head1", "old_head"}
    with pytest.raises(steps.Refused):  # old_dept merged away on 28 February: fail closed
        await decide_as(database, people["old_head"], A, now=dt.datetime(2025, 3, 2, tzinfo=dt.UTC))
    assert (await decide_as(database, people["head1"], A, now=dt.datetime(2025, 3, 2, tzinfo=dt.UTC))).settled is A


async def test_request_changes_then_resubmission_opens_a_linked_round(database):
    opened = await open_stage(database, "s_any", requested_by="clerk1")
    first = opened.new_assignments[0].assignment
    result = await decide_as(database, first, C, "Bổ sung số liệu quý III")
    assert result.settled is C
    async with database.transaction() as session:
        reopened = await steps.reopen_after_changes(
            session,
            plan=PLAN,
            secret=SECRET,
            previous_id=opened.request.id,
            data={"text": "Đã bổ sung"},
            requested_by="clerk1",
            waiter_ref=None,
            link_ttl=TTL,
            now=NOW,
        )
    assert reopened.request.round == 2 and reopened.request.previous_id == opened.request.id
    assert reopened.request.due_at == opened.request.due_at
    assert reopened.new_assignments
    with pytest.raises(steps.Refused):  # round 2 is not sent back: it cannot be re-opened
        async with database.transaction() as session:
            await steps.reopen_after_changes(
                session,
                plan=PLAN,
                secret=SECRET,
                previous_id=reopened.request.id,
                data={},
                requested_by="clerk1",
                waiter_ref=None,
                link_ttl=TTL,
                now=NOW,
            )


def test_delegation_cycles_and_self_delegation_are_refused():
    july = dict(valid_from=dt.date(2026, 7, 1), valid_to=dt.date(2026, 7, 31))
    existing = [Grant("a", "b", None, **july), Grant("b", "c", "head", **july)]
    with pytest.raises(DelegationRefused, match="cycle"):
        check_new(Grant("c", "a", "head", **july), existing)
    with pytest.raises(DelegationRefused, match="themselves"):
        check_new(Grant("a", "a", None, **july), existing)
    # Dates that do not overlap cannot form a cycle.
    check_new(Grant("c", "a", "head", valid_from=dt.date(2026, 8, 1), valid_to=dt.date(2026, 8, 31)), existing)


def test_names_in_nfd_and_nfc_compare_equal_and_the_plan_stores_nfc():
    nfd = unicodedata.normalize("NFD", "Nông Văn Ba")
    assert nfd != "Nông Văn Ba" and same_name(nfd, "Nông Văn Ba")
    assert all(unicodedata.is_normalized("NFC", o.name) for o in PLAN.officials)


def test_resolution_follows_the_directory_on_the_day():
    before = resolve_approvers(PLAN, ["head"], on=dt.date(2025, 1, 10), delegations=PLAN.delegations, requester=None)
    after = resolve_approvers(PLAN, ["head"], on=dt.date(2025, 3, 10), delegations=PLAN.delegations, requester=None)
    assert {a.official.id for a in before} == {"head1", "old_head"}
    assert {a.official.id for a in after} == {"head1"}  # old_dept merged away on 28 Feb 2025


async def test_decisions_counted_once_per_assignment(database):
    opened = await open_stage(database, "s_all")
    people = by_official(await assignments(database, opened.request.id))
    await decide_as(database, people["deputy1"], A)
    with pytest.raises(steps.InvalidLink):
        await decide_as(database, people["deputy1"], A)
    async with database.sessions() as session:
        count = len((await session.execute(select(Decision).where(Decision.request_id == opened.request.id))).all())
        request = await session.get(ApprovalRequest, opened.request.id)
    assert count == 1 and request.status == "pending"


async def test_delegations_through_the_api_are_checked_and_audited(database):
    from approvals.people.delegations import (
        create_delegation,
        list_delegations,
        revoke_delegation,
    )

    july = dict(valid_from=dt.date(2026, 9, 1), valid_to=dt.date(2026, 9, 10))
    async with database.transaction() as session:
        row = await create_delegation(
            session,
            plan=PLAN,
            delegator="deputy2",
            delegate="board1",
            role="deputy",
            reason=unicodedata.normalize("NFD", "Đi công tác"),
            by="coordinator:lan",
            now=NOW,
            **july,
        )
    assert row.reason == "Đi công tác"
    with pytest.raises(DelegationRefused, match="cycle"):
        async with database.transaction() as session:
            await create_delegation(
                session,
                plan=PLAN,
                delegator="board1",
                delegate="deputy2",
                role=None,
                reason="",
                by="coordinator:lan",
                now=NOW,
                **july,
            )
    with pytest.raises(DelegationRefused, match="does not hold"):
        async with database.transaction() as session:
            await create_delegation(
                session,
                plan=PLAN,
                delegator="board1",
                delegate="deputy1",
                role="chair",
                reason="",
                by="coordinator:lan",
                now=NOW,
                **july,
            )
    async with database.transaction() as session:
        assert await revoke_delegation(session, delegation_id=row.id, by="coordinator:lan", now=NOW)
        assert not await revoke_delegation(session, delegation_id=row.id, by="coordinator:lan", now=NOW)
        assert row.id not in {d.id for d in await list_delegations(session)}


async def test_sequence_whose_next_official_left_the_plan_is_refused_and_changes_nothing(database):
    """The next in a sequence is no longer in the plan (a merger removed them): the approval is
    refused with why, and nothing is recorded; a coordinator reassigns the step first."""
    opened = await open_stage(database, "s_sequence", now=dt.datetime(2026, 8, 1, tzinfo=dt.UTC))
    first, second = await assignments(database, opened.request.id)
    async with database.transaction() as session:
        (await session.get(Assignment, second.id)).official_id = "left_the_plan"
    with pytest.raises(Refused, match="left_the_plan"):
        await decide_as(database, first, A)
    rows = await assignments(database, opened.request.id)
    assert [(a.official_id, a.status) for a in rows] == [("head1", "pending"), ("left_the_plan", "waiting")]
    async with database.sessions() as session:
        assert (await session.execute(select(Decision).where(Decision.request_id == opened.request.id))).all() == []
