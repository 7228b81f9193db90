"""Sending back, on every stage kind of the annual cycle, end to end on real parts (Prefect
server and worker, SMTP server, `kehoach web` and `kehoach dispatch`): the orientation and the
materials (submissions), the Board's guidance (acknowledged: sent back for clarification, never
rejected), one outlet's plan (a fan-out branch), the budget, two units' annual reports and the
consolidated report. Each submitter gets the resubmission email with the reviewer's comment,
resubmits from its link (the form keeps what was sent), the next round is approved, and the
chain finishes."""

from __future__ import annotations

import html
import io

import docx
import pytest

from tests.support import local_http
from tests.support.officials import (
    ASK,
    ORIENTATION,
    RESUBMIT,
    SUBMIT,
    SUBMIT_EN,
    Inbox,
    acknowledge,
    approve,
    ask_clarification,
    report_every_unit,
    reporters,
    resubmit,
    rows,
    send_back,
    submit,
    submit_orientation,
)

pytestmark = pytest.mark.e2e


def _back_and_again(inbox: Inbox, *, decider: str, submitter: str, stage: str, comment: str, **fields: str) -> None:
    """The decider sends the step back; its submitter gets the resubmission link (the page shows
    the comment) and sends it again; the decider is asked again and approves the next round."""
    send_back(inbox.link(decider, ASK, stage), comment)
    page = resubmit(inbox.link(submitter, RESUBMIT, stage), **fields)
    assert comment in page
    approve(inbox.link(decider, ASK, stage), "Đã đạt yêu cầu.")


def test_a_step_of_every_kind_sent_back_is_resubmitted_and_the_chain_finishes(stack):
    year = stack.past_year(2)
    run_id = stack.start_cycle(year)
    inbox = Inbox(stack, year)

    # 1. The orientation goes back to the DCST's press officer, whose form keeps what they wrote.
    submit_orientation(inbox)
    send_back(inbox.link("dcst_director", ASK, "1. "), "Bổ sung chủ đề kinh tế xanh.")
    page = resubmit(
        inbox.link("dcst_press_officer", RESUBMIT, "1. "),
        **{**ORIENTATION, "text": "Định hướng đã bổ sung chủ đề kinh tế xanh"},
    )
    assert "Bổ sung chủ đề kinh tế xanh." in page and ORIENTATION["field_channels"] in page
    approve(inbox.link("dcst_director", ASK, "1. "), "Đã đạt yêu cầu.")
    # 2. An acknowledged submission: the lead agency asks the Board to make its guidance clearer
    # (it cannot reject it); the Board's head sends it again and it is acknowledged.
    submit(inbox.link("propaganda_head", SUBMIT, "2. "), text="Định hướng của Ban, bản 1")
    ask_clarification(inbox.link("dost_director", ASK, "2. "), "Đề nghị Ban nêu rõ chủ đề ưu tiên.")
    assert "Đề nghị Ban nêu rõ chủ đề ưu tiên." in resubmit(
        inbox.link("propaganda_head", RESUBMIT, "2. "), text="Định hướng của Ban: ưu tiên kinh tế xanh"
    )
    acknowledge(inbox.link("dost_director", ASK, "2. "))
    # 3. A submission.
    submit(inbox.link("dof_planning_officer", SUBMIT, "3. "), text="Tài liệu bản 1")
    _back_and_again(
        inbox,
        decider="dof_director",
        submitter="dof_planning_officer",
        stage="3. ",
        comment="Thiếu số liệu PCI 2025.",
        text="Tài liệu bản 2, có số liệu PCI 2025",
    )
    # 4. A fan-out: one outlet's plan goes back to its editor, the others go through.
    for editor in ("newspaper_radio_tv_editor", "literature_arts_editor", "portal_editor"):
        submit(inbox.link(editor, SUBMIT, "4. "), text=f"Kế hoạch sản xuất {year} của {editor}")
    _back_and_again(
        inbox,
        decider="portal_head",
        submitter="portal_editor",
        stage="4. ",
        comment="Cần lịch đăng tải theo tháng.",
        text="Kế hoạch của Cổng, có lịch theo tháng",
    )
    approve(inbox.link("newspaper_radio_tv_head", ASK, "4. "))
    approve(inbox.link("literature_arts_chair", ASK, "4. "))
    for _ in range(3):
        approve(inbox.link("dost_director", ASK, "4. "))
    # 5. A budget: the amount comes again with the resubmission.
    submit(inbox.link("dof_budget_officer", SUBMIT, "5. "), text="Phân bổ kinh phí", amount="1.200.000.000")
    _back_and_again(
        inbox,
        decider="dof_director",
        submitter="dof_budget_officer",
        stage="5. ",
        comment="Tách kinh phí cho các xã.",
        text="Phân bổ kinh phí, có phần cho các xã",
        amount="1.300.000.000",
    )
    # 7. Reports: two units' reports go back, each to its own reporting officer.
    report_every_unit(
        inbox,
        returned={
            "literature_arts_association": "Bổ sung số tác phẩm.",
            "provincial_web_portal": "Bổ sung lượt truy cập.",
        },
    )
    # 8. The consolidated report: the director sends the draft back; the coordinator's form shows
    # the comment, the draft and the summary sent; the next round is written again and approved.
    first = inbox.link("dost_coordinator", SUBMIT_EN, "8. ")
    assert local_http.post(first, data={"text": "Đánh giá lần đầu.", "lang": "en"}).status_code == 200
    comment = "Bổ sung đề xuất về kinh phí năm sau."
    send_back(inbox.link("dost_director", ASK, "8. "), comment)
    again = inbox.link("dost_coordinator", "[Changes requested]", "8. ")
    page = html.unescape(local_http.get(again).text)
    assert comment in page and "The consolidated report's draft" in page and "Đánh giá lần đầu." in page
    answer = local_http.post(again, data={"text": "Đánh giá đã bổ sung đề xuất về kinh phí.", "lang": "en"})
    assert answer.status_code == 200 and "Sent again" in answer.text
    approve(inbox.link("dost_director", ASK, "8. "))

    stack.wait_for_state(run_id, {"Completed"}, timeout=180)
    stages = dict(
        rows(
            stack,
            year,
            "SELECT s.stage, s.status FROM cycle_stage s JOIN cycle c ON c.id = s.cycle_id "
            "WHERE c.period = :p AND c.kind = 'annual'",
        )
    )
    assert stages == {
        "dic_direction": "done",
        "propaganda_guidance": "done",
        "materials": "done",
        "outlet_plans": "done",
        "finance_allocation": "done",
        "implementation": "done",
        "annual_report": "done",
        "consolidated_report": "done",
    }
    issued = stack.smtp.wait_for(lambda r: "[Báo cáo]" in r.subject and str(year) in r.subject)
    (docx_file,) = [
        part.get_payload(decode=True)
        for part in issued.message.iter_attachments()
        if part.get_filename().endswith(".docx")
    ]
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(docx_file)).paragraphs)
    assert "Đánh giá đã bổ sung đề xuất về kinh phí." in text and "Đánh giá lần đầu." not in text
    rounds = rows(
        stack,
        year,
        "SELECT r.stage, r.subject, r.round, r.status FROM approval_request r JOIN cycle c "
        "ON c.id = r.cycle_id WHERE c.period = :p AND c.kind = 'annual' AND r.round > 1 "
        "ORDER BY r.stage, r.subject",
    )
    assert rounds == [
        ("annual_report", "literature_arts_association", 2, "approved"),
        ("annual_report", "provincial_web_portal", 2, "approved"),
        ("consolidated_report", "", 2, "approved"),
        ("dic_direction", "", 2, "approved"),
        ("finance_allocation", "", 2, "approved"),
        ("materials", "", 2, "approved"),
        ("outlet_plans", "provincial_web_portal", 2, "approved"),
        ("propaganda_guidance", "", 2, "approved"),
    ]
    links = rows(
        stack,
        year,
        "SELECT l.kind, l.status, COUNT(*) FROM submission_link l JOIN approval_request r "
        "ON r.id = l.request_id JOIN cycle c ON c.id = r.cycle_id WHERE c.period = :p "
        "AND c.kind = 'annual' GROUP BY l.kind, l.status ORDER BY l.kind",
    )
    # First links: the orientation, the guidance, the materials, three outlets, the budget, every
    # unit's report and the consolidated report; eight resubmissions; all used.
    assert links == [("first", "used", 8 + len(reporters())), ("resubmission", "used", 8)]
    ids = [r.message["Message-ID"] for r in stack.smtp.received if str(year) in r.subject]
    assert len(ids) == len(set(ids))
