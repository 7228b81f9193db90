"""Opening requests and deciding them, on SQLite and PostgreSQL, without Prefect or the web."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text, update

from approvals import audit
from approvals.config import PACKAGED_PLAN
from approvals.models import ApprovalRequest, Assignment, AuditEvent, Decision
from approvals.plan import load_plan
from approvals.routing import decisions, link_views, steps
from approvals.routing.decisions import decide
from approvals.statuses import Outcome
from approvals.tokens import derive_token

SECRET = secrets.token_bytes(32)
PLAN = load_plan(PACKAGED_PLAN)
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = dt.datetime(2026, 1, 20, 2, 0, tzinfo=dt.UTC)


def _without(role: str):
    """The plan with nobody holding a role."""
    officials = [o for o in PLAN.officials if role not in o.roles]
    return PLAN.model_copy(update={"officials": officials})


async def _open(
    db, period: str | None = None, now: dt.datetime = NOW, stage: str = "dic_direction", plan=PLAN, subject: str = ""
):
    period = period or f"t-{uuid.uuid4().hex[:10]}"
    async with db.transaction() as session:
        cycle = await steps.get_or_create_cycle(session, kind="annual", period=period, starts_on=dt.date(2026, 1, 15))
        opened = await steps.open_request(
            session,
            plan=plan,
            secret=SECRET,
            cycle=cycle,
            stage_id=stage,
            subject=subject,
            waiter_ref=None,
            link_ttl=dt.timedelta(days=30),
            now=now,
        )
    return opened


def _token(opened, index: int = 0) -> str:
    assignment = opened.new_assignments[index].assignment
    return derive_token(SECRET, assignment.id, assignment.token_generation)


async def _count(db, model, **where) -> int:
    async with db.sessions() as session:
        query = select(func.count()).select_from(model)
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        return (await session.execute(query)).scalar_one()


async def test_open_is_idempotent_and_routes_to_the_successor_agency(database):
    opened = await _open(database, period="idem")
    again = await _open(database, period="idem")
    assert again.request.id == opened.request.id and again.new_assignments == []
    # The DIC split in 2025: the press orientation (stage 1) went to the DCST, not the DOST.
    assert [n.official.id for n in opened.new_assignments] == ["dcst_director"]
    assert opened.request.acting_agency == "dcst"
    assert await _count(database, ApprovalRequest, cycle_id=opened.cycle.id) == 1


async def test_before_the_2025_merger_the_dic_director_decides(database):
    opened = await _open(database, now=dt.datetime(2024, 1, 20, tzinfo=dt.UTC))
    assert [n.official.id for n in opened.new_assignments] == ["dic_director"]
    assert opened.request.acting_agency == "dic"


async def test_each_of_the_dics_duties_follows_its_own_successor(database):
    """The DIC's duties split on 1 March 2025: the plan's lead and the reports went to the DOST,
    the press orientation to the DCST (the plan's succession). Each stage and role follows the
    successor of its own duty; before the split the DIC carried all three."""
    lead = await _open(database, stage="consolidated_report")  # the plan's lead (a coordinator submits)
    assert lead.request.acting_agency == "dost"
    press = await _open(database, stage="dic_direction")
    assert press.request.acting_agency == "dcst"
    on = dt.date(2026, 6, 1)
    assert [o.id for o in PLAN.holders("lead_agency.director", on)] == ["dost_director"]
    assert [o.id for o in PLAN.holders("press_agency.director", on)] == ["dcst_director"]
    assert [o.id for o in PLAN.holders("press_agency.press_officer", on)] == ["dcst_press_officer"]
    assert [o.id for o in PLAN.holders("report_collector.director", on)] == ["dost_director"]
    before = dt.date(2024, 6, 1)
    assert {
        role: [o.id for o in PLAN.holders(role, before)]
        for role in ("lead_agency.director", "press_agency.director", "report_collector.director")
    } == {
        "lead_agency.director": ["dic_director"],
        "press_agency.director": ["dic_director"],
        "report_collector.director": ["dic_director"],
    }
    assert [o.id for o in PLAN.holders("press_agency.press_officer", before)] == ["dic_press_officer"]
    assert PLAN.agency_on("dic", on, "press").id == "dcst" and PLAN.agency_on("dic", on, "reports").id == "dost"
    assert {e.duty: e.verified for e in PLAN.agency("dic").succession} == {
        "lead": True,
        "reports": True,
        "press": False,
    }  # the press orientation's successor is assumed


async def test_annual_report_due_at_the_end_of_29_november_local_time(database):
    opened = await _open(database, stage="annual_report", subject="dof")  # a unit's branch
    assert opened.request.due_at.astimezone(TZ).date() == dt.date(2026, 11, 29)
    assert opened.request.due_at.astimezone(TZ).time() == dt.time.max
    assert opened.request.due_at.tzinfo is not None


async def test_viewing_a_link_changes_nothing(database):
    opened = await _open(database)
    audit_before = await _count(database, AuditEvent)
    for _ in range(5):
        async with database.sessions() as session:
            view = await link_views.view_link(session, _token(opened), now=NOW)
    assert view.request.id == opened.request.id
    assert await _count(database, AuditEvent) == audit_before
    assert await _count(database, Decision, request_id=opened.request.id) == 0


async def test_a_decision_is_recorded_once_and_the_token_dies(database):
    opened = await _open(database)
    token = _token(opened)
    async with database.transaction() as session:
        result = await decide(session, token=token, outcome=Outcome.approve, comment="", now=NOW)
    assert result.settled is Outcome.approve
    with pytest.raises(steps.InvalidLink):
        async with database.transaction() as session:
            await decide(session, token=token, outcome=Outcome.reject, comment="again", now=NOW)
    assert await _count(database, Decision, request_id=opened.request.id) == 1


async def test_concurrent_decisions_on_one_link_end_with_one_outcome(database):
    # On SQLite writers queue (BEGIN IMMEDIATE); on PostgreSQL the compare-and-set decides the race.
    opened = await _open(database)
    token = _token(opened)

    async def attempt(outcome):
        try:
            async with database.transaction() as session:
                await decide(session, token=token, outcome=outcome, comment="x", now=NOW)
            return "won"
        except (steps.InvalidLink, steps.AlreadyDecided):
            return "lost"

    results = await asyncio.gather(*(attempt(o) for o in [Outcome.approve, Outcome.reject] * 5))
    assert results.count("won") == 1
    assert await _count(database, Decision, request_id=opened.request.id) == 1
    decisions_audited = await _count(database, AuditEvent, entity_id=str(opened.request.id), action="decision.recorded")
    assert decisions_audited == 1


@pytest.mark.parametrize("outcome", [Outcome.reject, Outcome.request_changes])
async def test_reject_and_request_changes_need_a_comment(database, outcome):
    opened = await _open(database)
    with pytest.raises(decisions.CommentRequired):
        async with database.transaction() as session:
            await decide(session, token=_token(opened), outcome=outcome, comment="   ", now=NOW)
    assert await _count(database, Decision, request_id=opened.request.id) == 0


async def test_expired_tampered_and_revoked_links_are_refused_alike(database):
    opened = await _open(database)
    token = _token(opened)
    later = NOW + dt.timedelta(days=31)
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for candidate, now in [
        (token, later),
        (tampered, NOW),
        (token[:20], NOW),
        ("", NOW),
        (derive_token(b"another key", opened.new_assignments[0].assignment.id, 1), NOW),
    ]:
        with pytest.raises(steps.InvalidLink):
            async with database.sessions() as session:
                await link_views.view_link(session, candidate, now=now)
    async with database.transaction() as session:
        await session.execute(
            update(Assignment).where(Assignment.request_id == opened.request.id).values(status="revoked")
        )
    with pytest.raises(steps.InvalidLink):
        async with database.transaction() as session:
            await decide(session, token=token, outcome=Outcome.approve, comment="", now=NOW)


async def test_nobody_holding_the_role_fails_closed(database):
    with pytest.raises(steps.NoApprover):
        await _open(
            database,
            stage="materials",
            now=dt.datetime(2026, 1, 20, tzinfo=dt.UTC),
            plan=_without("materials.director"),
        )


async def test_audit_chain_verifies_and_names_the_first_edited_or_deleted_row(database, sandbox):
    await _open(database)
    async with database.sessions() as session:
        count, broken = await audit.verify(session)
    assert broken is None and count > 0
    async with database.sessions() as session:
        rows = list((await session.execute(select(AuditEvent.id).order_by(AuditEvent.id))).scalars())
    victim = rows[len(rows) // 2]
    async with database.transaction() as session:
        original = (await session.execute(select(AuditEvent.actor).where(AuditEvent.id == victim))).scalar_one()
        await session.execute(text("UPDATE audit_event SET actor = 'intruder' WHERE id = :id"), {"id": victim})
    async with database.sessions() as session:
        _, broken = await audit.verify(session)
    assert broken is not None and broken.row_id == victim and "edited" in broken.reason
    async with database.transaction() as session:
        await session.execute(text("UPDATE audit_event SET actor = :a WHERE id = :id"), {"a": original, "id": victim})
        await session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": victim})
    async with database.sessions() as session:
        _, broken = await audit.verify(session)
    assert broken is not None and broken.row_id == rows[rows.index(victim) + 1]
