"""A step that starts with a submission (materials, an outlet's plan, a budget, a unit's report):
the request waits for the acting unit, whose officer gets a form link; the approvers are asked
only once it arrives, routed by what was submitted; fan-out branches reach their own unit."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func, select

from approvals import coordination
from approvals.db import utcnow
from approvals.models import ApprovalRequest, Assignment, AuditEvent, SubmissionLink
from approvals.plan import load_plan
from approvals.routing.submissions import open_submission
from approvals.tokens import derive_token
from tests.api.conftest import live_token

STARTS = dt.date(2026, 1, 15)


async def _open(database, settings, stage_id: str, subject: str = "", *, cycle_kind: str = "annual"):
    """The stage's branch opened as the flow's task opens it; returns (request id, link token, official)."""
    async with database.transaction() as session:
        from approvals.routing import steps

        cycle = await steps.get_or_create_cycle(
            session, kind=cycle_kind, period=f"t-{uuid.uuid4().hex[:12]}", starts_on=STARTS
        )
        opened = await open_submission(
            session,
            plan=load_plan(settings.plan_file),
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id=stage_id,
            subject=subject,
            waiter_ref=None,
            now=utcnow(),
            link_ttl=dt.timedelta(days=30),
        )
    link = opened.asked.link
    return opened.opened.request.id, derive_token(settings.link_secret_bytes(), link.id, 1), opened.asked.official.id


async def _state(database, request_id) -> dict:
    async with database.sessions() as session:
        request = await session.get(ApprovalRequest, request_id, populate_existing=True)
        return {
            "status": request.status,
            "data": request.data,
            "requested_by": request.requested_by,
            "policy": request.policy,
            "assignments": sorted(
                (a.official_id, a.status)
                for a in (
                    await session.execute(select(Assignment).where(Assignment.request_id == request_id))
                ).scalars()
            ),
            "links": sorted(
                link.status
                for link in (
                    await session.execute(select(SubmissionLink).where(SubmissionLink.request_id == request_id))
                ).scalars()
            ),
            "audit": (
                await session.execute(
                    select(func.count()).select_from(AuditEvent).where(AuditEvent.entity_id == str(request_id))
                )
            ).scalar_one(),
        }


async def test_a_budget_waits_for_its_submission_then_goes_to_the_finance_director(client, database, settings):
    request_id, token, official = await _open(database, settings, "finance_allocation")
    assert official == "dof_budget_officer"  # the stage's requester role
    before = await _state(database, request_id)
    assert before["status"] == "awaiting_submission" and before["assignments"] == [] and before["links"] == ["pending"]

    page = await client.get(f"/s/{token}")
    assert page.status_code == 200
    assert "Nộp hồ sơ" in page.text and 'name="amount"' in page.text and "Bố trí kinh phí" in page.text
    assert "Ý kiến của người phê duyệt" not in page.text  # nobody has commented on a first submission
    assert (await client.head(f"/s/{token}")).status_code == 200
    assert await _state(database, request_id) == before  # reading changes nothing

    missing = await client.post(f"/s/{token}", data={"text": "Dự toán kinh phí truyền thông năm"})
    assert missing.status_code == 422 and "số tiền" in missing.text.lower()
    assert await _state(database, request_id) == before  # a refused form changes nothing

    sent = await client.post(
        f"/s/{token}", data={"text": "Dự toán kinh phí truyền thông năm", "amount": "1.500.000.000"}
    )
    assert sent.status_code == 200 and "Đã nộp" in sent.text
    after = await _state(database, request_id)
    assert after["status"] == "pending" and after["requested_by"] == "dof_budget_officer"
    assert after["data"] == {"text": "Dự toán kinh phí truyền thông năm", "amount": 1_500_000_000}
    assert after["assignments"] == [("dof_director", "pending")] and after["links"] == ["used"]

    again = await client.post(f"/s/{token}", data={"text": "Lần hai", "amount": "1"})
    assert again.status_code == 404 and "không còn hiệu lực" in again.text
    assert await _state(database, request_id) == after  # a used link changes nothing


async def test_a_budget_above_the_threshold_also_needs_the_ppc_vice_chair(client, database, settings):
    request_id, token, _ = await _open(database, settings, "finance_allocation")
    sent = await client.post(f"/s/{token}", data={"text": "Kinh phí lớn", "amount": "2.500.000.000 ₫"})
    assert sent.status_code == 200
    after = await _state(database, request_id)
    assert after["policy"] == "all"
    assert after["assignments"] == [("dof_director", "pending"), ("ppc_vice_chair", "pending")]


async def test_each_outlet_branch_reaches_its_own_editor_and_head(client, database, settings):
    plan = load_plan(settings.plan_file)
    stage = next(s for s in plan.cycle("annual").stages if s.id == "outlet_plans")
    # After the 1 July 2025 merger the newspaper and the radio-TV station are one branch, and the
    # district culture centres (until 30 June 2025) are gone.
    assert plan.branches(stage, dt.date(2026, 3, 1)) == [
        "lang_son_newspaper_radio_tv",
        "literature_arts_association",
        "provincial_web_portal",
    ]
    before = plan.branches(stage, dt.date(2025, 3, 1))
    assert before[:4] == [
        "lang_son_newspaper",
        "provincial_radio_tv",
        "literature_arts_association",
        "provincial_web_portal",
    ]
    assert len(before) == 15 and all(unit.startswith("ccsc_") for unit in before[4:])  # the city and 10 districts

    request_id, token, official = await _open(database, settings, "outlet_plans", "provincial_web_portal")
    assert official == "portal_editor"  # not the other outlets' editors
    sent = await client.post(f"/s/{token}", data={"text": "Kế hoạch sản xuất của Cổng thông tin"})
    assert sent.status_code == 200
    after = await _state(database, request_id)
    # In sequence: the portal's own head first (not the other outlets' heads), then the lead agency.
    assert after["assignments"] == [("dost_director", "waiting"), ("portal_head", "pending")]
    async with database.sessions() as session:
        head = (
            await session.execute(
                select(Assignment).where(Assignment.request_id == request_id, Assignment.official_id == "portal_head")
            )
        ).scalar_one()
    page = await client.get(f"/a/{await live_token(database, settings, head.id)}")
    assert page.status_code == 200 and "Kế hoạch sản xuất của Cổng thông tin" in page.text
    assert "Chờ đến lượt" in page.text  # the lead agency's director decides after the head

    request_id, _, official = await _open(database, settings, "outlet_plans", "lang_son_newspaper_radio_tv")
    assert official == "newspaper_radio_tv_editor"


async def test_each_unit_reports_through_the_lead_agency(database, settings):
    plan = load_plan(settings.plan_file)
    stage = next(s for s in plan.cycle("annual").stages if s.id == "annual_report")
    # Every unit in force reports: after the 2025 mergers, the DOST (not the DIC), the DoF (not the
    # DPI), the merged newspaper and radio-TV, and the 65 communes and wards (not the districts).
    units = plan.branches(stage, dt.date(2026, 3, 1))
    assert {
        "dost",
        "dof",
        "lang_son_newspaper_radio_tv",
        "literature_arts_association",
        "provincial_web_portal",
        "fatherland_front",
        "pc_ward_tam_thanh",
    } <= set(units)
    assert not {"dic", "dpi", "lang_son_newspaper", "pc_trang_dinh", "ccsc_trang_dinh"} & set(units)
    assert sum(unit.startswith(("pc_ward_", "pc_commune_")) for unit in units) == 65
    assert sum(unit.startswith(("pc_", "ccsc_")) for unit in plan.branches(stage, dt.date(2024, 10, 1))) == 22
    for unit, reporter in [
        ("dost", "dost_press_officer"),
        ("dof", "dof_budget_officer"),
        ("provincial_web_portal", "portal_editor"),
        ("pc_ward_tam_thanh", "pc_ward_tam_thanh_reporter"),
        ("womens_union", "womens_union_reporter"),
    ]:
        _, _, official = await _open(database, settings, "annual_report", unit)
        assert official == reporter


async def test_the_materials_come_from_the_department_that_compiles_them_on_the_day(database, settings):
    _, _, official = await _open(database, settings, "materials")
    assert official == "dof_planning_officer"  # the DPI merged into the DoF on 1 March 2025


async def test_opening_twice_asks_once(database, settings):
    async with database.transaction() as session:
        from approvals.routing import steps

        cycle = await steps.get_or_create_cycle(
            session, kind="annual", period=f"t-{uuid.uuid4().hex[:12]}", starts_on=STARTS
        )
        kwargs = dict(
            plan=load_plan(settings.plan_file),
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id="materials",
            subject="",
            waiter_ref=None,
            now=utcnow(),
            link_ttl=dt.timedelta(days=30),
        )
        first = await open_submission(session, **kwargs)
        second = await open_submission(session, **kwargs)
    assert first.asked is not None and second.asked is None
    assert first.opened.request.id == second.opened.request.id
    assert (await _state(database, first.opened.request.id))["links"] == ["pending"]


async def test_cancelling_the_cycle_closes_a_waiting_submission(client, database, settings):
    request_id, token, _ = await _open(database, settings, "materials")
    async with database.transaction() as session:
        cycle_id = (await session.get(ApprovalRequest, request_id)).cycle_id
        await coordination.cancel_cycle(session, cycle_id=cycle_id, reason="Thử hủy", by="test", now=utcnow())
    state = await _state(database, request_id)
    assert state["status"] == "expired" and state["links"] == ["closed"]
    page = await client.get(f"/s/{token}")
    assert page.status_code == 404
    sent = await client.post(f"/s/{token}", data={"text": "Muộn"})
    assert sent.status_code == 404
    assert await _state(database, request_id) == state


async def test_a_submitted_step_is_decided_from_the_approvers_link(client, database, settings):
    request_id, token, _ = await _open(database, settings, "materials")
    await client.post(
        f"/s/{token}", data={"text": "Bộ tài liệu phát triển bền vững", "links": "https://langson.gov.vn/tai-lieu"}
    )
    async with database.sessions() as session:
        assignment = (
            await session.execute(
                select(Assignment).where(Assignment.request_id == request_id, Assignment.official_id == "dof_director")
            )
        ).scalar_one()
    approver = await live_token(database, settings, assignment.id)
    page = await client.get(f"/a/{approver}")
    assert "Bộ tài liệu phát triển bền vững" in page.text and "https://langson.gov.vn/tai-lieu" in page.text
    decided = await client.post(f"/a/{approver}", data={"outcome": "approve", "comment": ""})
    assert decided.status_code == 200
    assert (await _state(database, request_id))["status"] == "approved"


async def test_a_coordinator_sees_who_must_submit_and_reminds_them(client, database, settings, accounts):
    request_id, token, official = await _open(database, settings, "finance_allocation")
    listed = await client.get(
        "/api/v1/requests",
        params={"status": "awaiting_submission", "stage": "finance_allocation"},
        headers=accounts.as_viewer,
    )
    assert listed.status_code == 200
    (row,) = [r for r in listed.json() if r["id"] == str(request_id)]
    assert row["waiting_on"] == [official] == ["dof_budget_officer"]

    assert (await client.post(f"/api/v1/requests/{request_id}/remind", headers=accounts.as_viewer)).status_code == 403
    reminded = await client.post(f"/api/v1/requests/{request_id}/remind", headers=accounts.as_coordinator)
    assert reminded.status_code == 200, reminded.text
    assert reminded.json()["notified"] == ["dof_budget_officer"] and reminded.json()["emails_queued"] == 1
    async with database.sessions() as session:
        from notifications.models import OutboxMessage

        (email,) = (
            await session.execute(
                select(OutboxMessage)
                .where(
                    OutboxMessage.idempotency_key.contains(":reminder-manual-"), OutboxMessage.recipients.is_not(None)
                )
                .order_by(OutboxMessage.created_at.desc())
                .limit(1)
            )
        ).scalars()
    assert email.kind == "submission_request" and email.recipients[0]["email"] == "ngansach.stc@lang-son.example"
    # The reminder carries a fresh link; the one before stops working (a plain page, nothing changed).
    async with database.sessions() as session:
        link = (
            await session.execute(select(SubmissionLink).where(SubmissionLink.request_id == request_id))
        ).scalar_one()
    assert link.token_generation == 2 and f"{link.id}:2" in email.text_body
    old = await client.get(f"/s/{token}")
    assert old.status_code == 404 and "không còn hiệu lực" in old.text
    fresh = derive_token(settings.link_secret_bytes(), link.id, 2)
    assert (await client.get(f"/s/{fresh}")).status_code == 200
    assert (await _state(database, request_id))["status"] == "awaiting_submission"


async def test_cancelling_wakes_a_run_that_waits_on_a_resubmission(client, database, settings, accounts):
    from approvals.models import Wake
    from tests.api.conftest import open_request

    opened = await open_request(database, settings, cycle_kind="annual", stage_id="dic_direction")
    token = await live_token(database, settings, opened.assignments["dcst_director"])
    sent_back = await client.post(f"/a/{token}", data={"outcome": "request_changes", "comment": "Bổ sung lịch"})
    assert sent_back.status_code == 200
    async with database.sessions() as session:  # sent back: nothing for the run yet (its unit is asked)
        assert (await session.execute(select(Wake).where(Wake.cycle_id == opened.cycle_id))).first() is None
    cancelled = await client.post(
        f"/api/v1/cycles/{opened.cycle_id}/cancel", json={"reason": "Dừng"}, headers=accounts.as_coordinator
    )
    assert cancelled.status_code == 200
    async with database.sessions() as session:
        wakes = [
            (w.stage, w.reason, w.status)
            for w in (await session.execute(select(Wake).where(Wake.cycle_id == opened.cycle_id))).scalars()
        ]
    assert wakes == [("", "cycle_cancelled", "queued")]  # the run, wherever it waits, learns of it
