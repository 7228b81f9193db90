"""Stages 1 and 2 as the plan writes them, and what travels with stage 4, in process: the lead
agency's press officer submits the orientation (themes, channels, calendar, a file); the
Propaganda Board is requested to give guidance, which the lead agency acknowledges and never
rejects; when stage 4 opens, every outlet's email, form and approval page carry the orientation
and the guidance, or say that the Board gave nothing by its due time; the orientation's file is
offered from the outlet's own link, and nothing else is."""

from __future__ import annotations

import datetime as dt
import html
import uuid

import pytest
from sqlalchemy import select, update

from approvals.db import utcnow
from approvals.models import ApprovalRequest, Cycle, SubmissionFile, SubmissionLink
from approvals.plan import load_plan
from approvals.routing import steps
from approvals.routing.submissions import open_submission
from approvals.running.sweep import sweep_request
from approvals.tokens import derive_token
from flows.stages import open_branches
from notifications.models import OutboxMessage
from notifications.render import Renderer
from tests.api.conftest import approver_token

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
ORIENTATION = {
    "text": "Định hướng tuyên truyền năm.",
    "field_themes": "Kinh tế xanh; chuyển đổi số",
    "field_channels": "Báo và Đài, Cổng thông tin",
    "field_calendar": "Mỗi quý một chuyên đề",
}
GUIDANCE = "Đề nghị tập trung nông nghiệp xanh và kinh tế cửa khẩu."


async def _open(database, settings, cycle_id, stage_id: str) -> str:
    """Open a single-branch stage that starts with a submission; the form link's token."""
    async with database.transaction() as session:
        cycle = await session.get(Cycle, cycle_id)
        opened = await open_submission(
            session,
            plan=load_plan(settings.plan_file),
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id=stage_id,
            subject="",
            waiter_ref=None,
            now=utcnow(),
            link_ttl=dt.timedelta(days=30),
        )
    return derive_token(settings.link_secret_bytes(), opened.asked.link.id, 1)


async def _oriented(client, database, settings, year: int) -> uuid.UUID:
    """Stage 1: the press officer submits the orientation with a file, the director approves it."""
    async with database.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="annual", period=str(year), starts_on=dt.date(year, 1, 15)
        )
    token = await _open(database, settings, cycle.id, "dic_direction")
    form = await client.get(f"/s/{token}")
    assert all(f'name="field_{name}"' in form.text for name in ("themes", "channels", "calendar"))
    sent = await client.post(
        f"/s/{token}", data=ORIENTATION, files=[("files", ("Định hướng.pdf", PDF, "application/pdf"))]
    )
    assert sent.status_code == 200, sent.text
    director = await approver_token(database, settings, cycle.id, "dic_direction")
    page = await client.get(f"/a/{director}")
    assert "Chủ đề tuyên truyền:" in page.text and "Kinh tế xanh; chuyển đổi số" in page.text
    assert (await client.post(f"/a/{director}", data={"outcome": "approve", "comment": ""})).status_code == 200
    return cycle.id


async def _outlets(database, settings, cycle_id, year: int) -> dict[str, str]:
    """Stage 4 opened as the run opens it; each outlet's form link token."""
    await open_branches(
        database,
        plan=load_plan(settings.plan_file),
        settings=settings,
        renderer=Renderer(),
        cycle_kind="annual",
        period=str(year),
        starts_on=dt.date(year, 1, 15),
        stage_id="outlet_plans",
        waiter_ref=None,
    )
    async with database.sessions() as session:
        links = (
            await session.execute(
                select(ApprovalRequest.subject, SubmissionLink.id)
                .join(SubmissionLink, SubmissionLink.request_id == ApprovalRequest.id)
                .where(ApprovalRequest.cycle_id == cycle_id, ApprovalRequest.stage == "outlet_plans")
            )
        ).all()
    return {subject: derive_token(settings.link_secret_bytes(), link_id, 1) for subject, link_id in links}


async def _email_to(database, address: str, year: int) -> str:
    """The stage 4 form email of one year to one address."""
    async with database.sessions() as session:
        rows = (
            (await session.execute(select(OutboxMessage).where(OutboxMessage.kind == "submission_request")))
            .scalars()
            .all()
        )
    (message,) = [
        m for m in rows if m.recipients[0]["email"] == address and "4. " in m.subject and str(year) in m.subject
    ]
    return message.text_body


async def test_the_boards_guidance_is_acknowledged_never_rejected_and_reaches_every_outlet(client, database, settings):
    cycle_id = await _oriented(client, database, settings, 2091)
    board = await _open(database, settings, cycle_id, "propaganda_guidance")
    async with database.sessions() as session:
        asked = (
            await session.execute(
                select(SubmissionLink.official_id)
                .join(ApprovalRequest, ApprovalRequest.id == SubmissionLink.request_id)
                .where(ApprovalRequest.cycle_id == cycle_id, ApprovalRequest.stage == "propaganda_guidance")
            )
        ).scalar_one()
    assert asked == "propaganda_head"  # the Board is asked to give guidance, not to approve
    request_page = await client.get(f"/s/{board}")
    assert "Đề nghị Ban Tuyên giáo" in request_page.text  # the request says it is requested
    assert (await client.post(f"/s/{board}", data={"text": GUIDANCE})).status_code == 200

    director = await approver_token(database, settings, cycle_id, "propaganda_guidance")
    page = await client.get(f"/a/{director}")
    assert "Tiếp nhận" in page.text and "Đề nghị làm rõ" in page.text and 'value="reject"' not in page.text
    refused = await client.post(f"/a/{director}", data={"outcome": "reject", "comment": "Không đồng ý."})
    assert refused.status_code == 422 and "chỉ có thể tiếp nhận" in refused.text
    async with database.sessions() as session:
        status = (
            await session.execute(
                select(ApprovalRequest.status).where(
                    ApprovalRequest.cycle_id == cycle_id, ApprovalRequest.stage == "propaganda_guidance"
                )
            )
        ).scalar_one()
    assert status == "pending"  # the refused choice changed nothing
    assert (await client.post(f"/a/{director}", data={"outcome": "approve", "comment": ""})).status_code == 200

    forms = await _outlets(database, settings, cycle_id, 2091)
    assert sorted(forms) == ["lang_son_newspaper_radio_tv", "literature_arts_association", "provincial_web_portal"]
    plan = load_plan(settings.plan_file)
    for unit, token in forms.items():
        editor = plan.holders("outlet.editor", dt.date.today(), unit=unit)[0]
        email = await _email_to(database, str(editor.email), 2091)
        form = html.unescape((await client.get(f"/s/{token}")).text)
        for shown in (email, form):
            assert GUIDANCE in shown and "Kinh tế xanh; chuyển đổi số" in shown and "Mỗi quý một chuyên đề" in shown
            assert "Định hướng.pdf" in shown
            assert "Không nhận được trong hạn" not in shown
        assert "Chủ trương, chính sách" in form and "Môi trường" in form  # a box per yearly content area

    portal = forms["provincial_web_portal"]
    async with database.sessions() as session:
        (pdf_id,) = (
            (
                await session.execute(
                    select(SubmissionFile.id)
                    .where(SubmissionFile.filename == "Định hướng.pdf")
                    .join(ApprovalRequest, ApprovalRequest.id == SubmissionFile.request_id)
                    .where(ApprovalRequest.cycle_id == cycle_id)
                )
            )
            .scalars()
            .all()
        )
    download = await client.get(f"/s/{portal}/shown/{pdf_id}")
    assert download.status_code == 200 and download.content == PDF
    assert (await client.get(f"/s/{portal}/shown/{uuid.uuid4()}")).status_code == 404  # only what it carries
    assert (await client.get(f"/s/{'x' * 43}/shown/{pdf_id}")).status_code == 404  # only with a live link

    sent = await client.post(
        f"/s/{portal}", data={"text": "Kế hoạch của Cổng.", "field_area_environment": "Chuyên mục Lạng Sơn xanh"}
    )
    assert sent.status_code == 200
    head = await approver_token(database, settings, cycle_id, "outlet_plans", "provincial_web_portal")
    page = html.unescape((await client.get(f"/a/{head}")).text)
    assert GUIDANCE in page and "Môi trường:" in page and "Chuyên mục Lạng Sơn xanh" in page
    assert (await client.get(f"/a/{head}/shown/{pdf_id}")).content == PDF
    async with database.sessions() as session:
        data = (
            await session.execute(
                select(ApprovalRequest.data).where(
                    ApprovalRequest.cycle_id == cycle_id,
                    ApprovalRequest.stage == "outlet_plans",
                    ApprovalRequest.subject == "provincial_web_portal",
                )
            )
        ).scalar_one()
    assert data["fields"] == {"area_environment": "Chuyên mục Lạng Sơn xanh"} and len(data["shown"]) == 2


@pytest.mark.parametrize("gave", [False, True], ids=["silent", "sent_unacknowledged"])
async def test_a_board_that_gave_nothing_by_its_due_time_is_shown_as_such(client, database, settings, gave):
    """The Board is requested, not ordered: at its due time the chain goes on (the step lapses,
    recorded), and the outlets read that it gave nothing, or what it sent if nobody acknowledged it."""
    year = 2092 + gave
    cycle_id = await _oriented(client, database, settings, year)
    board = await _open(database, settings, cycle_id, "propaganda_guidance")
    if gave:
        assert (await client.post(f"/s/{board}", data={"text": GUIDANCE})).status_code == 200
    async with database.transaction() as session:
        (request_id,) = (
            (
                await session.execute(
                    select(ApprovalRequest.id).where(
                        ApprovalRequest.cycle_id == cycle_id, ApprovalRequest.stage == "propaganda_guidance"
                    )
                )
            )
            .scalars()
            .all()
        )
        await session.execute(
            update(ApprovalRequest)
            .where(ApprovalRequest.id == request_id)
            .values(due_at=utcnow() - dt.timedelta(hours=1))
        )
    async with database.transaction() as session:
        event = await sweep_request(
            session,
            plan=load_plan(settings.plan_file),
            secret=settings.link_secret_bytes(),
            request_id=request_id,
            now=utcnow(),
            link_ttl=dt.timedelta(days=30),
        )
    assert event is not None and event.kind.value == "expired"

    forms = await _outlets(database, settings, cycle_id, year)
    form = html.unescape((await client.get(f"/s/{forms['provincial_web_portal']}")).text)
    email = await _email_to(database, "bientap.ttdt@lang-son.example", year)
    for shown in (form, email):
        assert "2. Ban Tuyên giáo cho ý kiến định hướng nội dung" in shown and "Kinh tế xanh" in shown
        if gave:
            assert GUIDANCE in shown and "Đã gửi, chưa được tiếp nhận." in shown
        else:
            assert "Không nhận được trong hạn; Kế hoạch tiếp tục mà không có nội dung này." in shown
