"""A stage removed from the plan while one of its links is live: the link is dead, and answers
with the invalid-link page (not a 500), on the approval page and on its POST, and changes nothing.
What such a stage sent earlier, and its overdue steps, are left out of the pages and the digest."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select, update

from approvals.db import utcnow
from approvals.models import ApprovalRequest, Cycle, Decision, SubmissionLink
from approvals.plan import load_plan
from approvals.running.sweep import overdue_notices
from approvals.tokens import derive_token
from flows.stages import open_branches
from notifications.render import Renderer
from tests.api.conftest import live_token, open_request


async def _answers_of_a_removed_stage(client, database, request_id, path: str, form: dict) -> None:
    """The link's page and its POST once the request's stage is gone from the plan: both are the
    invalid-link page, 404 (the link is live before)."""
    assert (await client.get(path)).status_code == 200  # live while its stage is in the plan
    invalid = (await client.get(f"{path[:3]}{'x' * 43}")).text
    async with database.transaction() as session:
        await session.execute(
            update(ApprovalRequest).where(ApprovalRequest.id == request_id).values(stage="a_stage_since_removed")
        )

    page = await client.get(path)
    answer = await client.post(path, data=form)

    assert (page.status_code, page.text) == (404, invalid)
    assert (answer.status_code, answer.text) == (404, invalid)


async def test_a_link_to_a_stage_the_plan_no_longer_has_gets_the_invalid_link_page(client, database, settings):
    opened = await open_request(database, settings)
    token = await live_token(database, settings, next(iter(opened.assignments.values())))
    await _answers_of_a_removed_stage(
        client, database, opened.request_id, f"/a/{token}", {"outcome": "approve", "comment": ""}
    )
    async with database.sessions() as session:
        status = (
            await session.execute(select(ApprovalRequest.status).where(ApprovalRequest.id == opened.request_id))
        ).scalar_one()
        decisions = (await session.execute(select(Decision.id).where(Decision.request_id == opened.request_id))).all()
    assert (status, decisions) == ("pending", [])


async def test_what_a_removed_stage_sent_is_left_off_a_later_page_and_the_rest_is_shown(client, database, settings):
    """A later step carries what earlier stages sent (`shown`); an entry of a stage since removed
    from the plan is left off, and the page still answers with the rest."""
    opened = await open_request(database, settings)
    token = await live_token(database, settings, next(iter(opened.assignments.values())))
    async with database.transaction() as session:
        await session.execute(
            update(ApprovalRequest)
            .where(ApprovalRequest.id == opened.request_id)
            .values(
                data={
                    "shown": [
                        {"stage": "a_stage_since_removed", "status": "given", "text": "Nội dung của bước đã bỏ"},
                        {"stage": "ppc_resolution", "status": "given", "text": "Nội dung vẫn còn trong kế hoạch"},
                    ]
                }
            )
        )

    page = await client.get(f"/a/{token}")

    assert page.status_code == 200, page.text
    assert "Nội dung vẫn còn trong kế hoạch" in page.text and "Nội dung của bước đã bỏ" not in page.text


async def test_an_overdue_step_of_a_removed_stage_leaves_the_digest_to_the_others(database, settings):
    """The overdue digest skips a step whose stage the plan no longer has (logged for a
    coordinator) and still tells each superior of the other steps."""
    period = f"t-{uuid.uuid4().hex[:12]}"
    kept = await open_request(database, settings, period=period, subject="dpi", days_late=1)
    removed = await open_request(database, settings, period=period, subject="dof", days_late=1)
    async with database.transaction() as session:
        await session.execute(
            update(ApprovalRequest)
            .where(ApprovalRequest.id.in_([kept.request_id, removed.request_id]))
            .values(escalated_at=utcnow(), told_at=None)
        )
        await session.execute(
            update(ApprovalRequest)
            .where(ApprovalRequest.id == removed.request_id)
            .values(stage="a_stage_since_removed")
        )

    async with database.transaction() as session:
        notices = await overdue_notices(session, plan=load_plan(settings.plan_file), now=utcnow())

    mine = [n for n in notices if n.cycle.id == kept.cycle_id]
    assert [[branch.request.id for branch in n.branches] for n in mine] == [[kept.request_id]]


SUBMITTED = [
    ("dic_direction", "submission"),
    ("outlet_plans", "fan_out"),
    ("finance_allocation", "budget"),
    ("annual_report", "report"),
    ("consolidated_report", "consolidation"),
]


@pytest.mark.parametrize("stage_id", [stage for stage, _ in SUBMITTED], ids=[kind for _, kind in SUBMITTED])
async def test_a_form_link_of_a_removed_stage_of_each_kind_gets_the_invalid_link_page(
    client, database, settings, stage_id
):
    """Each stage kind that starts with a submission, opened as the run opens it (every branch of
    a fan-out or a report: the plan's outlets, its 89 units): once the stage is gone from the plan,
    one branch's form link answers the invalid-link page on GET and POST, and nothing is submitted."""
    period = str(3100 + [stage for stage, _ in SUBMITTED].index(stage_id))  # a year of its own in the sandbox
    plan = load_plan(settings.plan_file)
    branches = await open_branches(
        database,
        plan=plan,
        settings=settings,
        renderer=Renderer(),
        cycle_kind="annual",
        period=period,
        starts_on=dt.date.today(),
        stage_id=stage_id,
        waiter_ref=None,
    )
    assert branches >= 1
    async with database.sessions() as session:
        request_id, link_id = (
            await session.execute(
                select(ApprovalRequest.id, SubmissionLink.id)
                .join(SubmissionLink, SubmissionLink.request_id == ApprovalRequest.id)
                .join(Cycle, Cycle.id == ApprovalRequest.cycle_id)
                .where(Cycle.period == period, ApprovalRequest.stage == stage_id)
                .limit(1)
            )
        ).one()
    token = derive_token(settings.link_secret_bytes(), link_id, 1)
    await _answers_of_a_removed_stage(
        client, database, request_id, f"/s/{token}", {"text": "Đã hoàn thành.", "amount": "900.000.000"}
    )
    async with database.sessions() as session:
        status = (
            await session.execute(select(ApprovalRequest.status).where(ApprovalRequest.id == request_id))
        ).scalar_one()
    assert status == "awaiting_submission"
