"""The whole annual chain end to end on real parts (Prefect server and worker, SMTP server,
`kehoach web` and `kehoach dispatch`): every step is done by an official from the link in the
email they received, as a person would, and the one suspended run carries the year from the
lead agency's orientation to the annual reports of every unit in force (about 90: the
departments, the press, the mass organisations, the 65 communes and wards) and the lead
agency's consolidated report to the PPC, waking once per stage. On the way, a step of every
stage kind is sent back and resubmitted (the orientation and the materials, the Board's
guidance asked to be clearer, one outlet's plan, the budget, four units' reports, the
consolidated report): each submitter gets the resubmission email with the reviewer's comment,
resubmits from its link (the form keeps what was sent), and the next round is approved. The
year's dates have passed, so the report opens at once; the units and officials are today's.

One walk where there were two (the chain, and every kind sent back: tests/README.md): each walked
the ~90 units of the year on both backends."""

from __future__ import annotations

import html
import unicodedata

import pytest
from sqlalchemy import text

from tests.support import local_http
from tests.support.issued_report import NAMES, the_issued_report
from tests.support.officials import (
    ASK,
    ORIENTATION,
    RESUBMIT,
    SUBMIT,
    SUBMIT_EN,
    Inbox,
    acknowledge,
    address,
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
from tests.support.remote_director import asked_on_the_phone

pytestmark = pytest.mark.e2e
SILENT = frozenset({"pc_commune_that_khe", "veterans_association"})  # send nothing by 30 November
SUMMARY = (
    "Năm nay các cơ quan báo chí đã tuyên truyền đầy đủ về phát triển bền vững.\n"
    "Đề nghị UBND tỉnh đôn đốc UBND xã Thất Khê và Hội Cựu chiến binh tỉnh báo cáo bổ sung."
)
GUIDANCE = "Đề nghị nhấn mạnh nông nghiệp xanh và kinh tế cửa khẩu."


def _back_and_again(inbox: Inbox, *, decider: str, submitter: str, stage: str, comment: str, **fields: str) -> None:
    """The decider sends the step back; its submitter gets the resubmission link (the page shows
    the comment and keeps what was sent) and sends it again; the decider approves the next round."""
    send_back(inbox.link(decider, ASK, stage), comment)
    page = resubmit(inbox.link(submitter, RESUBMIT, stage), **fields)
    assert comment in page
    approve(inbox.link(decider, ASK, stage), "Đã đạt yêu cầu.")


def test_the_annual_chain_with_every_stage_kind_sent_back_once_to_the_issued_report(stack):
    year = stack.past_year(1)
    run_id = stack.start_cycle(year)
    inbox = Inbox(stack, year)

    # 1. The lead agency's press officer submits the orientation; its director sends it back; the
    # form keeps what they wrote; the next round is approved.
    submit_orientation(inbox)
    send_back(inbox.link("dcst_director", ASK, "1. "), "Bổ sung chủ đề kinh tế xanh.")
    page = resubmit(
        inbox.link("dcst_press_officer", RESUBMIT, "1. "),
        **{**ORIENTATION, "text": "Định hướng đã bổ sung chủ đề kinh tế xanh"},
    )
    assert "Bổ sung chủ đề kinh tế xanh." in page and ORIENTATION["field_channels"] in page
    approve(inbox.link("dcst_director", ASK, "1. "), "Nhất trí.")
    # 2. The Propaganda Board is requested to give guidance; the lead agency asks it to be
    # clearer (an acknowledged step is never rejected); the Board's head sends it again and it
    # is acknowledged.
    submit(inbox.link("propaganda_head", SUBMIT, "2. "), text="Định hướng của Ban, bản 1")
    ask_clarification(inbox.link("dost_director", ASK, "2. "), "Đề nghị Ban nêu rõ chủ đề ưu tiên.")
    assert "Đề nghị Ban nêu rõ chủ đề ưu tiên." in resubmit(
        inbox.link("propaganda_head", RESUBMIT, "2. "), text=GUIDANCE
    )
    acknowledge(inbox.link("dost_director", ASK, "2. "))

    # 3. Materials: nobody decides before the compiling department submits them; sent back once.
    materials = inbox.link("dof_planning_officer", SUBMIT, "3. ")
    waiting = rows(
        stack,
        year,
        "SELECT r.status, COUNT(a.id) FROM approval_request r JOIN cycle c ON c.id = r.cycle_id "
        "LEFT JOIN assignment a ON a.request_id = r.id WHERE c.period = :p AND r.stage = 'materials' "
        "GROUP BY r.status",
    )
    assert waiting == [("awaiting_submission", 0)]
    submit(materials, text="Bộ tài liệu bản 1", links="https://langson.gov.vn/tai-lieu-ptbv")
    send_back(inbox.link("dof_director", ASK, "3. "), "Thiếu số liệu PCI 2025.")
    assert "Thiếu số liệu PCI 2025." in resubmit(
        inbox.link("dof_planning_officer", RESUBMIT, "3. "),
        text="Bộ tài liệu về phát triển bền vững và năng lực cạnh tranh, có số liệu PCI 2025",
    )
    decide = inbox.link("dof_director", ASK, "3. ")
    assert "Bộ tài liệu về phát triển bền vững" in local_http.get(decide).text
    approve(decide)

    # 4. One branch per outlet (the newspaper and the radio-TV station merged in 2025): each
    # editor submits, the outlet's head then the lead agency's director approve in sequence.
    # The orientation and the Board's guidance reach every outlet: in the email and on the form.
    # The portal's plan goes back to its editor; the association's is rejected by its chair.
    for editor in ("newspaper_radio_tv_editor", "literature_arts_editor", "portal_editor"):
        link = inbox.link(editor, SUBMIT, "4. ")
        asked = next(r for r in stack.smtp.received if link in r.text)
        form = html.unescape(local_http.get(link).text)
        for shown in (GUIDANCE, ORIENTATION["field_themes"], ORIENTATION["field_calendar"]):
            assert shown in asked.text and shown in form, (editor, shown)
        assert "Chủ trương, chính sách" in form and "Môi trường" in form  # a box per yearly content area
        submit(
            link,
            text=f"Kế hoạch sản xuất {year} của {editor}",
            field_area_environment=f"Chuyên mục môi trường của {editor}",
        )
    _back_and_again(
        inbox,
        decider="portal_head",
        submitter="portal_editor",
        stage="4. ",
        comment="Cần lịch đăng tải theo tháng.",
        text="Kế hoạch của Cổng, có lịch theo tháng",
    )
    approve(inbox.link("newspaper_radio_tv_head", ASK, "4. "))
    rejected = local_http.post(
        inbox.link("literature_arts_chair", ASK, "4. "),
        data={"outcome": "reject", "comment": "Hội không đủ kinh phí năm nay."},
    )
    assert rejected.status_code == 200
    for _ in range(2):  # only the two branches their heads approved reach the director
        approve(inbox.link("dost_director", ASK, "4. "))

    # 5. The finance allocation, above 2 billion VND: the department's director and the PPC
    # vice-chair are asked at once; the director sends it back (the vice-chair's link closes), the
    # amount comes again with the resubmission, and both approve the next round.
    submit(
        inbox.link("dof_budget_officer", SUBMIT, "5. "), text="Phân bổ kinh phí truyền thông", amount="2.400.000.000"
    )
    spared = inbox.link("ppc_vice_chair", ASK, "5. ")
    _back_and_again(
        inbox,
        decider="dof_director",
        submitter="dof_budget_officer",
        stage="5. ",
        comment="Tách kinh phí cho các xã.",
        text="Phân bổ kinh phí truyền thông, có phần cho các xã",
        amount="2.500.000.000",
    )
    assert local_http.get(spared).status_code == 404
    approve(inbox.link("ppc_vice_chair", ASK, "5. "))

    # 7. Every unit in force reports through the lead agency (the departments, the press, the
    # mass organisations, the 65 communes and wards...), whose director accepts each report;
    # four reports go back for changes, each to its own reporting officer, and come again; two
    # units send nothing.
    returned = {
        "pc_ward_tam_thanh": "Bổ sung số buổi tuyên truyền ở khu dân cư.",
        "womens_union": "Bổ sung số hội viên được tuyên truyền.",
        "literature_arts_association": "Bổ sung số tác phẩm.",
        "provincial_web_portal": "Bổ sung lượt truy cập.",
    }
    units = report_every_unit(inbox, returned=returned, silent=SILENT)
    assert len(units) >= 85  # the province's size: 15 departments, 6 mass organisations, 65 communes...

    # 30 November passes with two units silent: the sweep wakes the run, which goes on to stage 8.
    with stack.sandbox.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE cycle_stage SET goes_on_at = :past WHERE stage = 'annual_report' AND "
                "cycle_id = (SELECT id FROM cycle WHERE kind = 'annual' AND period = :p)"
            ),
            {"past": "2000-01-01 00:00:00+00:00", "p": str(year)},
        )
    stack.wait_for_state(stack.start_run("sweep/sweep", {}), {"Completed"})

    # 8. The lead agency's coordinator (who reads English) submits the consolidated report's
    # draft; the director sends it back; the coordinator's form shows the comment, the draft and
    # the summary sent; the next round, typed on a phone (decomposed), is approved, and the
    # numbered report goes to the PPC and the ministries with both files attached.
    first = inbox.link("dost_coordinator", SUBMIT_EN, "8. ")
    form = html.unescape(local_http.get(first).text)
    assert f"{len(units)} of {len(units) + len(SILENT)} agencies and units have reported" in form, form[
        form.find("<main>") :
    ][:1500]
    assert all(NAMES[unit] in form for unit in SILENT)  # named as not reported
    assert local_http.post(first, data={"text": "Đánh giá lần đầu.", "lang": "en"}).status_code == 200
    comment = "Bổ sung đề xuất về kinh phí năm sau."
    send_back(inbox.link("dost_director", ASK, "8. "), comment)
    again = inbox.link("dost_coordinator", "[Changes requested]", "8. ")
    page = html.unescape(local_http.get(again).text)
    assert comment in page and "The consolidated report's draft" in page and "Đánh giá lần đầu." in page
    answer = local_http.post(again, data={"text": unicodedata.normalize("NFD", SUMMARY), "lang": "en"})
    assert answer.status_code == 200 and "Sent again" in answer.text
    approve(inbox.link("dost_director", ASK, "8. "))

    # The director signs on the phone (VNPT SmartCA's shape): the run asks, then waits suspended,
    # holding no process, until the web service's poll finds the confirmation and wakes it.
    asked = asked_on_the_phone(stack.phone, year)
    stack.wait_for_state(run_id, {"Suspended"})
    stack.wait_until(lambda: stack.flow_run_process() is None, "the waiting run still holds a process")
    assert not [r for r in stack.smtp.received if "[Báo cáo]" in r.subject and str(year) in r.subject]
    stack.phone.confirm(asked.transaction_id)
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
        "outlet_plans": "rejected",  # one branch was rejected; the chain went on with the others
        "finance_allocation": "done",
        "implementation": "done",
        "annual_report": "waiting",  # the silent units may still report late
        "consolidated_report": "done",
    }
    the_issued_report(stack, year, units, silent=SILENT, summary=SUMMARY, replaced="Đánh giá lần đầu.")
    # Every step sent back went a second round, which was approved (acknowledged: the guidance).
    rounds = rows(
        stack,
        year,
        "SELECT r.stage, r.subject, r.round, r.status FROM approval_request r JOIN cycle c "
        "ON c.id = r.cycle_id WHERE c.period = :p AND c.kind = 'annual' AND r.round > 1 "
        "ORDER BY r.stage, r.subject",
    )
    assert rounds == [
        *[("annual_report", unit, 2, "approved") for unit in sorted(returned)],
        ("consolidated_report", "", 2, "approved"),
        ("dic_direction", "", 2, "approved"),
        ("finance_allocation", "", 2, "approved"),
        ("materials", "", 2, "approved"),
        ("outlet_plans", "provincial_web_portal", 2, "approved"),
        ("propaganda_guidance", "", 2, "approved"),
    ]
    outlets = rows(
        stack,
        year,
        "SELECT r.subject, r.round, r.status FROM approval_request r JOIN cycle c "
        "ON c.id = r.cycle_id WHERE c.period = :p AND c.kind = 'annual' "
        "AND r.stage = 'outlet_plans' ORDER BY r.subject, r.round",
    )
    assert outlets == [
        ("lang_son_newspaper_radio_tv", 1, "approved"),
        ("literature_arts_association", 1, "rejected"),
        ("provincial_web_portal", 1, "changes_requested"),
        ("provincial_web_portal", 2, "approved"),
    ]
    # Every unit asked once, its latest round approved (the silent ones still asked).
    reports = rows(
        stack,
        year,
        "SELECT r.subject, r.round, r.status FROM approval_request r JOIN cycle c "
        "ON c.id = r.cycle_id WHERE c.period = :p AND c.kind = 'annual' "
        "AND r.stage = 'annual_report'",
    )
    latest = {subject: (n, status) for subject, n, status in sorted(reports)}
    assert set(latest) == set(units) | SILENT
    assert {s for s, (n, status) in latest.items() if n == 2} == set(returned)
    assert {s: status for s, (_, status) in latest.items() if status != "approved"} == {
        unit: "awaiting_submission" for unit in SILENT
    }
    asked = [
        r.envelope_to
        for r in stack.smtp.received
        if str(year) in r.subject and SUBMIT in r.subject and "7. " in r.subject
    ]
    everyone = {**reporters(), **units}
    assert sorted(a for to in asked for a in to) == sorted(address(officer) for officer in everyone.values())
    # The budget: one decision sent it back, both approvers decided the second round.
    budget = rows(
        stack,
        year,
        "SELECT r.round, r.policy, COUNT(d.id) FROM approval_request r JOIN cycle c ON c.id = r.cycle_id "
        "JOIN decision d ON d.request_id = r.id WHERE c.period = :p AND c.kind = 'annual' "
        "AND r.stage = 'finance_allocation' GROUP BY r.round, r.policy ORDER BY r.round",
    )
    assert budget == [(1, "all", 1), (2, "all", 2)]
    # First links: the orientation, the guidance, the materials, three outlets, the budget, every
    # reporting unit's report and the consolidated report; the silent units' still open; a
    # resubmission for each of the ten steps sent back; all used.
    links = rows(
        stack,
        year,
        "SELECT l.kind, l.status, COUNT(*) FROM submission_link l JOIN approval_request r "
        "ON r.id = l.request_id JOIN cycle c ON c.id = r.cycle_id WHERE c.period = :p "
        "AND c.kind = 'annual' GROUP BY l.kind, l.status ORDER BY l.kind, l.status",
    )
    assert links == [
        ("first", "pending", len(SILENT)),
        ("first", "used", 8 + len(units)),
        ("resubmission", "used", 6 + len(returned)),
    ]
    # Each decision and each submission once; no email sent twice (by Message-ID at the server).
    ids = [r.message["Message-ID"] for r in stack.smtp.received if str(year) in r.subject]
    assert len(ids) == len(set(ids))
    digest = stack.smtp.wait_for(
        lambda r: (
            "dieuphoi.skhcn@lang-son.example" in r.envelope_to
            and str(year) in r.subject
            and "finished" in r.subject.lower()
        )
    )
    assert "Annual implementation report" in digest.text
    # The run was woken once per stage, not once per branch nor per round: a handful of resumes
    # for ~90 units and ten steps sent back; and once more when the director answered on the phone.
    woken = rows(
        stack,
        year,
        "SELECT w.stage, w.reason, COUNT(*) FROM wake w JOIN cycle c ON c.id = w.cycle_id "
        "WHERE c.period = :p AND c.kind = 'annual' GROUP BY w.stage, w.reason",
    )
    by_stage: dict[str, int] = {}
    for stage, _, count in woken:
        by_stage[stage] = by_stage.get(stage, 0) + count
    assert by_stage == {
        stage: 1
        for stage in (
            "dic_direction",
            "propaganda_guidance",
            "materials",
            "outlet_plans",
            "finance_allocation",
            "annual_report",
        )
    } | {"consolidated_report": 2}
    assert ("consolidated_report", "signature_answered", 1) in [tuple(w) for w in woken]
