"""The whole annual chain end to end on real parts (Prefect server and worker, SMTP server,
`kehoach web` and `kehoach dispatch`): every step is done by an official from the link in the
email they received, as a person would, and the one suspended run carries the year from the
lead agency's orientation to the units' annual reports."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import text

pytestmark = pytest.mark.e2e

LINK = re.compile(r"(http://127\.0\.0\.1:\d+/[as]/[A-Za-z0-9_-]+)")
MAIL = {  # official -> address (plans/lang-son.yaml)
    "dost_director": "giamdoc.skhcn@lang-son.example",
    "propaganda_head": "truongban.tgdv@lang-son.example",
    "dof_planning_officer": "tonghop.stc@lang-son.example",
    "dof_director": "giamdoc.stc@lang-son.example",
    "dof_budget_officer": "ngansach.stc@lang-son.example",
    "ppc_vice_chair": "phochutich@lang-son.example",
    "dost_press_officer": "baochi.skhcn@lang-son.example",
    "newspaper_radio_tv_editor": "bientap.baodai@lang-son.example",
    "newspaper_radio_tv_head": "tonggiamdoc.baodai@lang-son.example",
    "literature_arts_editor": "bientap.hoivhnt@lang-son.example",
    "literature_arts_chair": "chutich.hoivhnt@lang-son.example",
    "portal_editor": "bientap.ttdt@lang-son.example",
    "portal_head": "cong.ttdt@lang-son.example",
}
ASK = "Cần phê duyệt"
SUBMIT = "Cần gửi nội dung"


class Inbox:
    """The links officials received, each taken once."""

    def __init__(self, stack, year: int):
        self.stack, self.year, self.used = stack, year, set()

    def link(self, official: str, subject: str, stage: str) -> str:
        def fresh(r) -> bool:
            return (MAIL[official] in r.envelope_to and subject in r.message["Subject"]
                    and stage in r.message["Subject"] and str(self.year) in r.message["Subject"]
                    and any(link not in self.used for link in LINK.findall(r.text)))

        email = self.stack.smtp.wait_for(fresh, timeout=120)
        (link,) = {link for link in LINK.findall(email.text) if link not in self.used}
        self.used.add(link)
        return link


def _approve(link: str, comment: str = "") -> None:
    page = httpx.get(link)
    assert page.status_code == 200 and "Đồng ý" in page.text
    answer = httpx.post(link, data={"outcome": "approve", "comment": comment})
    assert answer.status_code == 200, answer.text


def _submit(link: str, **fields: str) -> None:
    page = httpx.get(link)
    assert page.status_code == 200 and "Nộp hồ sơ" in page.text
    answer = httpx.post(link, data=fields)
    assert answer.status_code == 200 and "Đã nộp" in answer.text, answer.text


def _rows(stack, year: int, sql: str) -> list:
    with stack.sandbox.engine.connect() as conn:
        return conn.execute(text(sql), {"p": str(year)}).all()


def test_the_annual_chain_from_orientation_to_the_units_reports(stack):
    year = stack.year(4)
    run_id = stack.start_cycle(year)
    inbox = Inbox(stack, year)

    # 1. The lead agency's orientation, approved by its director.
    _approve(inbox.link("dost_director", ASK, "1. "), "Nhất trí.")
    # 2. The Propaganda Board's guidance on content.
    _approve(inbox.link("propaganda_head", ASK, "2. "), "Đề nghị nhấn mạnh nông nghiệp xanh.")

    # 3. Materials: nobody decides before the compiling department submits them.
    materials = inbox.link("dof_planning_officer", SUBMIT, "3. ")
    waiting = _rows(stack, year, "SELECT r.status, COUNT(a.id) FROM approval_request r JOIN cycle c ON c.id = r.cycle_id "
                    "LEFT JOIN assignment a ON a.request_id = r.id WHERE c.period = :p AND r.stage = 'materials' "
                    "GROUP BY r.status")
    assert waiting == [("awaiting_submission", 0)]
    _submit(materials, text="Bộ tài liệu về phát triển bền vững và năng lực cạnh tranh",
            links="https://langson.gov.vn/tai-lieu-ptbv")
    decide = inbox.link("dof_director", ASK, "3. ")
    assert "Bộ tài liệu về phát triển bền vững" in httpx.get(decide).text
    _approve(decide)

    # 4. One branch per outlet (the newspaper and the radio-TV station merged in 2025): each
    # editor submits, the outlet's head then the lead agency's director approve in sequence.
    for editor in ("newspaper_radio_tv_editor", "literature_arts_editor", "portal_editor"):
        _submit(inbox.link(editor, SUBMIT, "4. "), text=f"Kế hoạch sản xuất {year} của {editor}")
    _approve(inbox.link("newspaper_radio_tv_head", ASK, "4. "))
    _approve(inbox.link("portal_head", ASK, "4. "))
    rejected = httpx.post(inbox.link("literature_arts_chair", ASK, "4. "),
                          data={"outcome": "reject", "comment": "Hội không đủ kinh phí năm nay."})
    assert rejected.status_code == 200
    for _ in range(2):  # only the two branches their heads approved reach the director
        _approve(inbox.link("dost_director", ASK, "4. "))

    # 5. The finance allocation, above 2 billion VND: the PPC vice-chair approves too.
    _submit(inbox.link("dof_budget_officer", SUBMIT, "5. "), text="Phân bổ kinh phí truyền thông",
            amount="2.400.000.000")
    _approve(inbox.link("dof_director", ASK, "5. "))
    _approve(inbox.link("ppc_vice_chair", ASK, "5. "))

    # 7. Every unit reports through the lead agency, whose director accepts each report.
    reporters = ["dost_press_officer", "dof_budget_officer", "newspaper_radio_tv_editor", "literature_arts_editor",
                 "portal_editor"]
    for reporter in reporters:
        _submit(inbox.link(reporter, SUBMIT, "7. "), text=f"Báo cáo kết quả năm {year}")
    for _ in reporters:
        _approve(inbox.link("dost_director", ASK, "7. "))

    stack.wait_for_state(run_id, {"Completed"}, timeout=180)
    stages = dict(_rows(stack, year, "SELECT s.stage, s.status FROM cycle_stage s JOIN cycle c ON c.id = s.cycle_id "
                                     "WHERE c.period = :p"))
    assert stages == {"dic_direction": "done", "propaganda_guidance": "done", "materials": "done",
                      "outlet_plans": "rejected",  # one branch was rejected; the chain went on with the others
                      "finance_allocation": "done", "implementation": "done", "annual_report": "done"}
    branches = _rows(stack, year, "SELECT r.stage, r.subject, r.status FROM approval_request r JOIN cycle c "
                                  "ON c.id = r.cycle_id WHERE c.period = :p AND r.stage IN ('outlet_plans', "
                                  "'annual_report') ORDER BY r.stage, r.subject")
    assert branches == [
        ("annual_report", "dof", "approved"), ("annual_report", "dost", "approved"),
        ("annual_report", "lang_son_newspaper_radio_tv", "approved"),
        ("annual_report", "literature_arts_association", "approved"),
        ("annual_report", "provincial_web_portal", "approved"),
        ("outlet_plans", "lang_son_newspaper_radio_tv", "approved"),
        ("outlet_plans", "literature_arts_association", "rejected"),
        ("outlet_plans", "provincial_web_portal", "approved"),
    ]
    budget = _rows(stack, year, "SELECT r.policy, COUNT(d.id) FROM approval_request r JOIN cycle c ON c.id = r.cycle_id "
                                "JOIN decision d ON d.request_id = r.id WHERE c.period = :p "
                                "AND r.stage = 'finance_allocation' GROUP BY r.policy")
    assert budget == [("all", 2)]
    # Each decision and each submission once; no email sent twice (by Message-ID at the server).
    ids = [r.message["Message-ID"] for r in stack.smtp.received if str(year) in (r.message["Subject"] or "")]
    assert len(ids) == len(set(ids))
    digest = stack.smtp.wait_for(lambda r: "dieuphoi.skhcn@lang-son.example" in r.envelope_to
                                 and str(year) in r.message["Subject"] and "finished" in r.message["Subject"].lower())
    assert "Annual implementation report" in digest.text


def test_a_cancelled_cycle_stops_where_it_is(stack):
    year = stack.year(7)
    run_id = stack.start_cycle(year)
    inbox = Inbox(stack, year)
    _approve(inbox.link("dost_director", ASK, "1. "))
    guidance = inbox.link("propaganda_head", ASK, "2. ")
    stack.wait_for_state(run_id, {"Suspended"})

    token = stack.api_token()
    (cycle_id,) = [c["id"] for c in httpx.get(f"{stack.base_url}/api/v1/cycles", params={"year": year},
                                              headers={"Authorization": f"Bearer {token}"}).json()
                   if c["kind"] == "annual" and c["period"] == str(year)]
    cancelled = httpx.post(f"{stack.base_url}/api/v1/cycles/{cycle_id}/cancel",
                           headers={"Authorization": f"Bearer {token}"}, json={"reason": "Điều chỉnh kế hoạch"})
    assert cancelled.status_code == 200, cancelled.text

    stack.wait_for_state(run_id, {"Completed"})  # the run learns it on resume and opens nothing more
    assert httpx.get(guidance).status_code == 404  # the open link closed with the cycle
    stages = dict(_rows(stack, year, "SELECT s.stage, s.status FROM cycle_stage s JOIN cycle c ON c.id = s.cycle_id "
                                     "WHERE c.period = :p"))
    assert stages == {"dic_direction": "done", "propaganda_guidance": "expired"}
