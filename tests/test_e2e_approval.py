"""Stage 1's approval end to end on real parts: a Prefect server and `kehoach worker`, an
SMTP server, `kehoach web` and `kehoach dispatch`, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select, text

from approvals.models import ApprovalRequest, Assignment, AuditEvent, Cycle, CycleStage, Decision
from tests.support import local_http
from tests.support.officials import (
    ORIENTATION,
    Inbox,
    after_a_rejected_orientation,
    submit_orientation,
)

pytestmark = pytest.mark.e2e

DIRECTOR = "giamdoc.svhttdl@lang-son.example"  # stage 1 is the press orientation: the DCST's since 2025
PRESS_OFFICER = "baochi.svhttdl@lang-son.example"  # submits stage 1 (its requester role)
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/a/[A-Za-z0-9_-]+)")
RESUBMIT = re.compile(r"(http://127\.0\.0\.1:\d+/s/[A-Za-z0-9_-]+)")


STAGE_1 = "dic_direction"


def _snapshot(stack, year: int) -> dict:
    """Everything a link could change, for one year's stage 1."""
    with stack.reading() as conn:
        cycle_id = conn.execute(select(Cycle.id).where(Cycle.kind == "annual", Cycle.period == str(year))).scalar_one()
        request = conn.execute(
            select(ApprovalRequest).where(ApprovalRequest.cycle_id == cycle_id, ApprovalRequest.stage == STAGE_1)
        ).one()
        return {
            "request_status": request.status,
            "assignments": sorted(
                (a.status, a.token_hash)
                for a in conn.execute(select(Assignment).where(Assignment.request_id == request.id))
            ),
            "decisions": conn.execute(
                select(func.count()).select_from(Decision).where(Decision.request_id == request.id)
            ).scalar_one(),
            "audit_rows": conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one(),
            "stage": conn.execute(
                select(CycleStage.status).where(CycleStage.cycle_id == cycle_id, CycleStage.stage == STAGE_1)
            ).scalar_one(),
        }


def _open_cycle(stack, year: int):
    """Start the year's cycle; return its run id and the link from the email the director received."""
    run_id = stack.start_cycle(year)
    state = stack.wait_for_state(run_id, {"Suspended"})
    assert state.type.value == "PAUSED" and state.name == "Suspended"  # not an in-process pause
    submit_orientation(Inbox(stack, year))  # the press officer submits it: the director is asked
    email = stack.smtp.wait_for(
        lambda r: DIRECTOR in r.envelope_to and f"{year}" in r.subject and "Cần phê duyệt" in r.subject
    )
    links = set(LINK.findall(email.text))
    assert len(links) == 1, email.text
    link = links.pop()
    assert link in email.html
    return run_id, link


def _decision_row(stack, year: int):
    with stack.reading() as conn:
        return conn.execute(
            text(
                "SELECT d.outcome, d.comment, d.official_id FROM decision d "
                "JOIN approval_request r ON r.id = d.request_id "
                "JOIN cycle c ON c.id = r.cycle_id WHERE c.period = :p"
            ),
            {"p": str(year)},
        ).one()


def test_approve_from_the_emailed_link(stack):
    year = stack.year(1)
    run_id, link = _open_cycle(stack, year)

    # The waiting run holds no process: the worker runs no flow process while it waits.
    assert stack.worker_children() == []

    before = _snapshot(stack, year)
    assert before["request_status"] == "pending" and before["decisions"] == 0 and before["stage"] == "waiting"
    for _ in range(3):
        page = local_http.get(link)
        assert page.status_code == 200
        assert "Định hướng truyền thông của năm" in page.text and "Đồng ý" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert local_http.head(link).status_code == 200
    assert _snapshot(stack, year) == before  # no decision, no audit row, token still valid

    response = local_http.post(link, data={"outcome": "approve", "comment": "Nhất trí với định hướng."})
    assert response.status_code == 200, response.text
    assert "Đã ghi nhận ý kiến" in response.text

    stack.wait_for_stage_2(run_id, year)
    after = _snapshot(stack, year)
    assert after["request_status"] == "approved"
    assert after["stage"] == "done"
    assert after["decisions"] == 1
    assert [a[0] for a in after["assignments"]] == ["decided"]
    assert _decision_row(stack, year) == ("approve", "Nhất trí với định hướng.", "dcst_director")
    receipt = stack.smtp.wait_for(
        lambda r: DIRECTOR in r.envelope_to and "Đã ghi nhận" in r.subject and f"{year}" in r.text
    )
    assert "Đồng ý" in receipt.text
    told = stack.smtp.wait_for(
        lambda r: PRESS_OFFICER in r.envelope_to and "Đã phê duyệt" in r.subject and f"{year}" in r.subject
    )  # the submitter learns the outcome
    assert "Hoàng Văn Minh" not in told.text and "Đoàn Thị Bích" in told.text  # today's director

    # The used link now gets the same plain page as any bad link, and changes nothing.
    used = local_http.post(link, data={"outcome": "reject", "comment": "lần hai"})
    unknown = local_http.get(link.rsplit("/", 1)[0] + "/" + "x" * 43)
    assert used.status_code == unknown.status_code == local_http.get(link).status_code == 404
    assert used.text == unknown.text
    assert _snapshot(stack, year) == after


def test_reject_ends_the_stage_as_rejected_and_bad_tokens_change_nothing(stack):
    year = stack.year(2)
    run_id, link = _open_cycle(stack, year)
    token = link.rsplit("/", 1)[1]
    base = link.rsplit("/", 1)[0]
    before = _snapshot(stack, year)

    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    unknown = "x" * 43
    bad = [tampered, token[:-5], unknown, "x" * 10_000]
    answers = set()
    for candidate in bad:
        for method in ("get", "post"):
            response = local_http.request(
                method.upper(), f"{base}/{candidate}", data={"outcome": "approve"} if method == "post" else None
            )
            answers.add((response.status_code, response.text))
    assert len(answers) == 1, "every bad token must get the same status and page"
    status, body = answers.pop()
    assert status == 404 and "Liên kết không còn hiệu lực" in body
    assert _snapshot(stack, year) == before

    missing_comment = local_http.post(link, data={"outcome": "reject", "comment": "  "})
    assert missing_comment.status_code == 422
    assert "Vui lòng nhập ý kiến" in missing_comment.text
    assert _snapshot(stack, year) == before

    response = local_http.post(link, data={"outcome": "reject", "comment": "Chưa phù hợp với chủ đề năm."})
    assert response.status_code == 200
    after_a_rejected_orientation(stack, year, run_id)
    after = _snapshot(stack, year)
    assert after["request_status"] == "rejected"
    assert after["stage"] == "rejected"
    assert _decision_row(stack, year) == ("reject", "Chưa phù hợp với chủ đề năm.", "dcst_director")


def test_request_changes_goes_back_to_the_submitter_and_the_next_round_goes_on(stack):
    year = stack.year(3)
    run_id, link = _open_cycle(stack, year)
    before = _snapshot(stack, year)

    forged = local_http.post(link, data={"outcome": "approve"}, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403
    cross = local_http.post(link, data={"outcome": "approve"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert _snapshot(stack, year) == before

    comment = "Đề nghị bổ sung kênh phát thanh cơ sở và lịch cụ thể theo quý."
    response = local_http.post(
        link, data={"outcome": "request_changes", "comment": comment}, headers={"Origin": stack.base_url}
    )
    assert response.status_code == 200
    assert _decision_row(stack, year) == ("request_changes", comment, "dcst_director")

    # The step goes back to its submitter, with the comment; the run keeps waiting, holding no process.
    back = stack.smtp.wait_for(
        lambda r: PRESS_OFFICER in r.envelope_to and "Cần chỉnh sửa" in r.subject and str(year) in r.subject
    )
    (resubmit_link,) = set(RESUBMIT.findall(back.text))
    stack.wait_for_state(run_id, {"Suspended"})
    after = _snapshot(stack, year)
    assert after["request_status"] == "changes_requested" and after["stage"] == "changes_requested"
    page = local_http.get(resubmit_link)
    assert page.status_code == 200 and comment in page.text
    assert _snapshot(stack, year) == after  # reading the comments changes nothing

    revised = "Định hướng năm: bổ sung kênh phát thanh cơ sở, lịch theo quý."
    assert ORIENTATION["field_themes"] in page.text  # the form offers what was sent before
    sent = local_http.post(
        resubmit_link, data={**ORIENTATION, "text": revised, "field_channels": "Thêm truyền thanh cơ sở"}
    )
    assert sent.status_code == 200 and "Đã gửi lại" in sent.text
    assert local_http.post(resubmit_link, data={"text": "lần hai"}).status_code == 404  # the link works once

    # Round 2 reaches the director as a new request; approving it moves the chain to stage 2.
    second = stack.smtp.wait_for(
        lambda r: (
            DIRECTOR in r.envelope_to and "Cần phê duyệt" in r.subject and str(year) in r.subject and link not in r.text
        )
    )
    (link2,) = set(LINK.findall(second.text))
    page2 = local_http.get(link2)
    assert revised in page2.text and comment in page2.text  # the new text, and the earlier round's comment
    assert local_http.post(link2, data={"outcome": "approve", "comment": ""}).status_code == 200
    stack.wait_for_stage_2(run_id, year)
    with stack.reading() as conn:
        rounds = conn.execute(
            text(
                "SELECT r.round, r.status, r.previous_id IS NOT NULL, r.data FROM approval_request r "
                "JOIN cycle c ON c.id = r.cycle_id WHERE c.period = :p AND r.stage = :s ORDER BY r.round"
            ),
            {"p": str(year), "s": STAGE_1},
        ).all()
        stage = conn.execute(
            text(
                "SELECT s.status FROM cycle_stage s JOIN cycle c ON c.id = s.cycle_id "
                "WHERE c.period = :p AND s.stage = :s"
            ),
            {"p": str(year), "s": STAGE_1},
        ).scalar_one()
    assert [(r[0], r[1], r[2]) for r in rounds] == [(1, "changes_requested", False), (2, "approved", True)]
    data = rounds[1][3] if isinstance(rounds[1][3], dict) else json.loads(rounds[1][3])  # SQLite gives JSON text
    assert data == {
        "text": revised,
        "fields": {
            "themes": ORIENTATION["field_themes"],
            "channels": "Thêm truyền thanh cơ sở",
            "calendar": ORIENTATION["field_calendar"],
        },
    }
    assert stage == "done"


def test_no_token_reaches_the_logs_or_the_database(stack):
    """Link tokens are derived at send time: neither the outbox nor any log holds one."""
    tokens = {m.group(1).rsplit("/", 1)[1] for r in stack.smtp.received for m in LINK.finditer(r.text)}
    assert tokens, "the earlier tests of this backend sent links"
    with stack.reading() as conn:
        dumped = " ".join(
            str(row)
            for table in ("outbox_message", "assignment", "audit_event", "decision")
            for row in conn.execute(text(f"SELECT * FROM {table}"))
        )
    logs = " ".join(stack.log(name) for name in ("web", "worker", "dispatch"))
    for token in tokens:
        assert token not in dumped
        assert token not in logs
    assert "/a/[redacted]" in stack.log("web")
