"""The (re)submission form: typed by the stage (text, links, amount), with checked attachments
kept in their own table and offered to the approvers from their page."""

from __future__ import annotations

import datetime as dt
import unicodedata

import pytest
from sqlalchemy import func, select

from approvals.models import ApprovalRequest, Assignment, SubmissionFile, SubmissionLink
from approvals.plan.stages import FieldSpec, StageKind
from approvals.plan.values import Text
from approvals.routing.submitting import SubmissionInvalid, parse_submission
from approvals.tokens import derive_token
from tests.api.conftest import live_token, open_request

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
ORIENTATION = {
    "field_themes": "Kinh tế xanh",
    "field_channels": "Báo, đài, cổng thông tin",
    "field_calendar": "Quý I–IV",
}


async def _sent_back(client, database, settings):
    """A stage 1 request that the director sent back; returns (request id, resubmission token)."""
    opened = await open_request(
        database, settings, cycle_kind="annual", stage_id="dic_direction", starts_on=dt.date(2026, 1, 15)
    )
    token = await live_token(database, settings, opened.assignments["dcst_director"])
    answer = await client.post(f"/a/{token}", data={"outcome": "request_changes", "comment": "Thiếu lịch theo quý"})
    assert answer.status_code == 200
    async with database.sessions() as session:  # the decision asked for the resubmission
        link = (
            await session.execute(select(SubmissionLink).where(SubmissionLink.request_id == opened.request_id))
        ).scalar_one()
    assert (link.kind, link.official_id) == ("resubmission", "dcst_press_officer")  # the stage's requester role
    return opened.request_id, derive_token(settings.link_secret_bytes(), link.id, 1)


def load(settings):
    from approvals.plan import load_plan

    return load_plan(settings.plan_file)


async def _rounds(database, request_id) -> int:
    async with database.sessions() as session:
        first = await session.get(ApprovalRequest, request_id)
        return (
            await session.execute(
                select(func.count()).select_from(ApprovalRequest).where(ApprovalRequest.cycle_id == first.cycle_id)
            )
        ).scalar_one()


async def test_a_typed_resubmission_with_a_file_reaches_the_approver(client, database, settings):
    request_id, token = await _sent_back(client, database, settings)
    page = await client.get(f"/s/{token}")
    assert page.status_code == 200 and "Thiếu lịch theo quý" in page.text and 'type="file"' in page.text

    # Stage 1's own boxes (the orientation's themes, channels and calendar) are required.
    assert 'name="field_themes"' in page.text and "Lịch triển khai" in page.text
    missing = await client.post(
        f"/s/{token}", data={"text": "Đã bổ sung lịch theo quý.", **ORIENTATION, "field_calendar": " "}
    )
    assert missing.status_code == 422 and "Vui lòng điền mục «Lịch triển khai»" in missing.text
    assert await _rounds(database, request_id) == 1  # a refused form changes nothing

    sent = await client.post(
        f"/s/{token}",
        data={"text": "Đã bổ sung lịch theo quý.", **ORIENTATION, "links": "https://langson.gov.vn/ke-hoach\n"},
        files=[("files", ("Kế hoạch quý.pdf", PDF, "application/pdf"))],
    )
    assert sent.status_code == 200, sent.text
    async with database.sessions() as session:
        second = (
            await session.execute(select(ApprovalRequest).where(ApprovalRequest.previous_id == request_id))
        ).scalar_one()
        stored = (
            await session.execute(select(SubmissionFile).where(SubmissionFile.request_id == second.id))
        ).scalar_one()
        assignment = (await session.execute(select(Assignment).where(Assignment.request_id == second.id))).scalar_one()
    assert second.data == {
        "text": "Đã bổ sung lịch theo quý.",
        "links": ["https://langson.gov.vn/ke-hoach"],
        "fields": {"themes": "Kinh tế xanh", "channels": "Báo, đài, cổng thông tin", "calendar": "Quý I–IV"},
    }
    assert (stored.filename, stored.content_type, stored.size) == ("Kế hoạch quý.pdf", "application/pdf", len(PDF))

    approver = await live_token(database, settings, assignment.id)
    approval = await client.get(f"/a/{approver}")
    assert "Kế hoạch quý.pdf" in approval.text and "https://langson.gov.vn/ke-hoach" in approval.text
    assert "Kênh truyền thông:" in approval.text and "Báo, đài, cổng thông tin" in approval.text
    download = await client.get(f"/a/{approver}/files/{stored.id}")
    assert download.status_code == 200 and download.content == PDF
    assert "attachment" in download.headers["content-disposition"]
    assert download.headers["x-content-type-options"] == "nosniff"
    assert (await client.get(f"/a/{'x' * 43}/files/{stored.id}")).status_code == 404  # no live link, no file


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("virus.exe", b"MZ\x90\x00"),  # a type we never take
        ("bao-cao.pdf", b"MZ\x90\x00 not a pdf"),  # a name that lies about the content
        ("empty.pdf", b""),
    ],
)
async def test_a_refused_file_stores_nothing(client, database, settings, name, content):
    request_id, token = await _sent_back(client, database, settings)
    before = await _rounds(database, request_id)
    answer = await client.post(
        f"/s/{token}",
        data={"text": "Đã sửa.", **ORIENTATION},
        files=[("files", (name, content, "application/octet-stream"))],
    )
    assert answer.status_code == 422 and "Không có gì được lưu" in answer.text
    assert await _rounds(database, request_id) == before
    assert (await client.get(f"/s/{token}")).status_code == 200  # the link still works


def test_submissions_are_typed_by_the_stage():
    assert parse_submission(stage_kind=StageKind.budget, text="Dự toán", amount="1.250.000.000 ₫") == {
        "text": "Dự toán",
        "amount": 1_250_000_000,
    }
    with pytest.raises(SubmissionInvalid) as missing:
        parse_submission(stage_kind=StageKind.budget, text="Dự toán")
    assert missing.value.field == "amount"
    for bad in ({"links": "javascript:alert(1)"}, {"links": "ftp://x.example/a"}, {"amount": "12a"}):
        with pytest.raises(SubmissionInvalid):
            parse_submission(stage_kind=StageKind.submission, text="x", **bad)
    with pytest.raises(SubmissionInvalid):
        parse_submission(stage_kind=StageKind.submission, text="   ")


def test_named_fields_are_kept_in_nfc_and_required_ones_must_be_filled():
    specs = [
        FieldSpec(id="themes", name=Text(vi="Chủ đề", en="Themes")),
        FieldSpec(id="area_policy", name=Text(vi="Chủ trương, chính sách", en="Policy"), required=False),
    ]
    typed = parse_submission(
        stage_kind=StageKind.submission,
        text="Định hướng",
        specs=specs,
        fields={"themes": unicodedata.normalize("NFD", " Kinh tế xanh "), "area_policy": ""},
    )
    assert typed == {"text": "Định hướng", "fields": {"themes": "Kinh tế xanh"}}  # NFC, trimmed; empty left out
    with pytest.raises(SubmissionInvalid) as missing:
        parse_submission(stage_kind=StageKind.submission, text="Định hướng", specs=specs, fields={}, language="en")
    assert (missing.value.field, missing.value.name) == ("field", "Themes")
