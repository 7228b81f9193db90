"""A step sent back for changes reaches its submitter with a fresh resubmission link, on every
stage kind that starts with a submission (the used first link never blocks it), and a step
nobody can be asked to (re)submit is shown to the coordinators and alerts them."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select, update

from approvals.db import utcnow
from approvals.models import ApprovalRequest, Assignment, AuditEvent, SubmissionLink
from approvals.plan import load_plan
from approvals.routing import steps
from approvals.routing.submissions import SubmissionAsked, SubmissionUnrouted, ask_resubmission, open_submission
from approvals.tokens import derive_token
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.render import Renderer
from tests.api.conftest import live_token

STARTS = dt.date(2026, 1, 15)
TTL = dt.timedelta(days=30)
# stage, its kind, the branch, the officer who submits, the first approver, the form's fields
KINDS = [
    ("materials", "submission", "", "dof_planning_officer", "dof_director", {}),
    ("outlet_plans", "fan_out", "provincial_web_portal", "portal_editor", "portal_head", {}),
    ("finance_allocation", "budget", "", "dof_budget_officer", "dof_director", {"amount": "900.000.000"}),
    ("annual_report", "report", "literature_arts_association", "literature_arts_editor", "dost_director", {}),
]


async def _open(database, settings, plan, stage_id: str, subject: str):
    async with database.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="annual", period=f"t-{uuid.uuid4().hex[:12]}", starts_on=STARTS
        )
        opened = await open_submission(
            session,
            plan=plan,
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id=stage_id,
            subject=subject,
            waiter_ref=None,
            now=utcnow(),
            link_ttl=TTL,
        )
        await Emails.of(plan, settings, Renderer()).asked(session, opened.opened.request, cycle, opened.asked)
    return opened


async def _links(database, request_id) -> list[tuple[str, str]]:
    async with database.sessions() as session:
        return sorted(
            (link.kind, link.status)
            for link in (
                await session.execute(select(SubmissionLink).where(SubmissionLink.request_id == request_id))
            ).scalars()
        )


async def _ask_again(database, settings, plan, request_id):
    """What the cycle's run does for a step sent back: ask for the resubmission, with its email."""
    async with database.transaction() as session:
        asked = await ask_resubmission(
            session, plan=plan, secret=settings.link_secret_bytes(), request_id=request_id, now=utcnow(), link_ttl=TTL
        )
        request = await session.get(ApprovalRequest, request_id)
        cycle = await session.get(steps.Cycle, request.cycle_id)
        await Emails.of(plan, settings, Renderer()).asked(session, request, cycle, asked)
    return asked


async def _emails(database, kind: str, address: str) -> list[OutboxMessage]:
    async with database.sessions() as session:
        return [
            m
            for m in (await session.execute(select(OutboxMessage).where(OutboxMessage.kind == kind))).scalars()
            if any(r["email"] == address for r in m.recipients)
        ]


@pytest.mark.parametrize(
    ("stage_id", "kind", "subject", "officer", "approver", "fields"), KINDS, ids=[k[1] for k in KINDS]
)
async def test_a_submitted_step_sent_back_gets_a_resubmission_link(
    client, database, settings, stage_id, kind, subject, officer, approver, fields
):
    plan = load_plan(settings.plan_file)
    assert steps.stage_of(plan, "annual", stage_id).kind.value == kind
    opened = await _open(database, settings, plan, stage_id, subject)
    request_id = opened.opened.request.id
    assert isinstance(opened.asked, SubmissionAsked) and opened.asked.official.id == officer
    first = derive_token(settings.link_secret_bytes(), opened.asked.link.id, 1)
    sent = await client.post(f"/s/{first}", data={"text": "Bản đầu tiên", **fields})
    assert sent.status_code == 200, sent.text

    async with database.sessions() as session:
        (assignment,) = (
            await session.execute(
                select(Assignment.id).where(
                    Assignment.request_id == request_id,
                    Assignment.official_id == approver,
                    Assignment.status == "pending",
                )
            )
        ).scalars()
    back = await client.post(
        f"/a/{await live_token(database, settings, assignment)}",
        data={"outcome": "request_changes", "comment": "Đề nghị bổ sung số liệu quý IV"},
    )
    assert back.status_code == 200
    # The decision's own transaction asked the submitter to resubmit: the used first link
    # did not stand in for it.
    assert await _links(database, request_id) == [("first", "used"), ("resubmission", "pending")]
    (email,) = await _emails(database, "resubmission_request", str(plan.official(officer).email))
    assert email.subject.startswith("[Cần chỉnh sửa]")
    async with database.sessions() as session:
        link = (
            await session.execute(
                select(SubmissionLink).where(
                    SubmissionLink.request_id == request_id, SubmissionLink.kind == "resubmission"
                )
            )
        ).scalar_one()
    assert link.official_id == officer and f"{link.id}:1" in email.text_body
    # Asked once: asking again finds the link it created and asks nothing new.
    assert await _ask_again(database, settings, plan, request_id) is None
    assert await _links(database, request_id) == [("first", "used"), ("resubmission", "pending")]
    assert len(await _emails(database, "resubmission_request", str(plan.official(officer).email))) == 1

    # The page shows the reviewer's comment; resubmitting opens the next round for the approvers.
    again = derive_token(settings.link_secret_bytes(), link.id, 1)
    page = await client.get(f"/s/{again}")
    assert page.status_code == 200 and "Đề nghị bổ sung số liệu quý IV" in page.text
    resent = await client.post(f"/s/{again}", data={"text": "Bản đã bổ sung số liệu quý IV", **fields})
    assert resent.status_code == 200, resent.text
    async with database.sessions() as session:
        second = (
            await session.execute(select(ApprovalRequest).where(ApprovalRequest.previous_id == request_id))
        ).scalar_one()
        asked_now = [
            a.official_id
            for a in (
                await session.execute(
                    select(Assignment).where(Assignment.request_id == second.id, Assignment.status == "pending")
                )
            ).scalars()
        ]
    assert (second.round, second.status, second.data["text"]) == (2, "pending", "Bản đã bổ sung số liệu quý IV")
    assert asked_now == [approver]


def _without(plan, *official_ids: str):
    return plan.model_copy(update={"officials": [o for o in plan.officials if o.id not in official_ids]})


async def _attention(client, accounts) -> list[dict]:
    answer = await client.get("/api/v1/attention", headers=accounts.as_coordinator)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_a_step_nobody_can_be_asked_to_submit_alerts_the_coordinators(client, database, settings, accounts):
    plan = _without(load_plan(settings.plan_file), "dof_budget_officer")  # the only holder of the role
    opened = await _open(database, settings, plan, "finance_allocation", "")
    request_id = opened.opened.request.id
    assert isinstance(opened.asked, SubmissionUnrouted) and opened.asked.action == "submission"
    assert await _links(database, request_id) == []

    shown = [a for a in await _attention(client, accounts) if a["request_id"] == str(request_id)]
    assert [a["kind"] for a in shown] == ["submission_unrouted"]
    dashboard = await client.get("/?lang=en", headers=accounts.as_coordinator)
    assert "Needs attention" in dashboard.text and f"/requests/{request_id}" in dashboard.text
    (alert,) = [
        m
        for m in await _emails(database, "attention", "dieuphoi.skhcn@lang-son.example")
        if str(request_id) in m.idempotency_key
    ]
    assert alert.subject.startswith("[Needs attention] Nobody to ask to submit")  # the coordinator reads English

    # Opening again (a replay) records and tells nothing twice.
    async with database.transaction() as session:
        cycle = await session.get(steps.Cycle, opened.opened.request.cycle_id)
        again = await open_submission(
            session,
            plan=plan,
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id="finance_allocation",
            subject="",
            waiter_ref=None,
            now=utcnow(),
            link_ttl=TTL,
        )
    assert again.asked is None
    async with database.sessions() as session:
        recorded = (
            (
                await session.execute(
                    select(AuditEvent.action).where(
                        AuditEvent.entity_id == str(request_id), AuditEvent.action.like("%unrouted")
                    )
                )
            )
            .scalars()
            .all()
        )
    assert recorded == ["submission.unrouted"]


async def test_asking_for_a_resubmission_after_a_used_first_link(database, settings):
    """`ask_resubmission` on a request whose first link was used: it creates the resubmission
    link (the first one never blocks it), once."""
    plan = load_plan(settings.plan_file)
    opened = await _open(database, settings, plan, "annual_report", "provincial_web_portal")
    request_id = opened.opened.request.id
    async with database.transaction() as session:
        await session.execute(
            update(SubmissionLink)
            .where(SubmissionLink.request_id == request_id)
            .values(status="used", used_at=utcnow())
        )
        await session.execute(
            update(ApprovalRequest)
            .where(ApprovalRequest.id == request_id)
            .values(status="changes_requested", requested_by="portal_editor")
        )
    asked = await _ask_again(database, settings, plan, request_id)
    assert isinstance(asked, SubmissionAsked) and (asked.link.kind, asked.official.id) == (
        "resubmission",
        "portal_editor",
    )
    assert await _ask_again(database, settings, plan, request_id) is None
    assert await _links(database, request_id) == [("first", "used"), ("resubmission", "pending")]


async def test_a_step_sent_back_with_nobody_to_resubmit_alerts_the_coordinators(
    app, client, database, settings, accounts
):
    plan = load_plan(settings.plan_file)
    opened = await _open(database, settings, plan, "materials", "")
    request_id = opened.opened.request.id
    first = derive_token(settings.link_secret_bytes(), opened.asked.link.id, 1)
    assert (await client.post(f"/s/{first}", data={"text": "Tài liệu"})).status_code == 200
    async with database.sessions() as session:
        (assignment,) = (
            await session.execute(
                select(Assignment.id).where(Assignment.request_id == request_id, Assignment.status == "pending")
            )
        ).scalars()
    assert [a for a in await _attention(client, accounts) if a["request_id"] == str(request_id)] == []

    # The officer who submitted has left, and nobody else holds the role: the decision is
    # recorded, and the coordinators are told that nobody can be asked to resubmit.
    state = app.state.kehoach
    state.plan = _without(plan, "dof_planning_officer", "dpi_officer")
    try:
        back = await client.post(
            f"/a/{await live_token(database, settings, assignment)}",
            data={"outcome": "request_changes", "comment": "Thiếu phụ lục"},
        )
    finally:
        state.plan = plan
    assert back.status_code == 200
    assert await _links(database, request_id) == [("first", "used")]
    shown = [a for a in await _attention(client, accounts) if a["request_id"] == str(request_id)]
    assert [a["kind"] for a in shown] == ["resubmission_unrouted"]
    (alert,) = [
        m
        for m in await _emails(database, "attention", "dieuphoi.skhcn@lang-son.example")
        if str(request_id) in m.idempotency_key
    ]
    assert "Nobody to resubmit" in alert.subject
    # Once the plan names someone again, a coordinator's "remind" asks them.
    reminded = await client.post(f"/api/v1/requests/{request_id}/remind", headers=accounts.as_coordinator)
    assert reminded.status_code == 200, reminded.text
    assert reminded.json()["notified"] == ["dof_planning_officer"]
    assert await _links(database, request_id) == [("first", "used"), ("resubmission", "pending")]
    assert [a for a in await _attention(client, accounts) if a["request_id"] == str(request_id)] == []
