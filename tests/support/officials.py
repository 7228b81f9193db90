"""Officials' side of the end-to-end tests: the links in the emails they received, used
over HTTP as a person would (open the page, then send the form)."""

from __future__ import annotations

import datetime as dt
import functools
import html
import re
import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from tests.support import local_http
from tests.support.remote_director import asked_on_the_phone

LINK = re.compile(r"(http://127\.0\.0\.1:\d+/[as]/[A-Za-z0-9_-]+)")


@functools.lru_cache(maxsize=1)
def _plan():
    from approvals.config import PACKAGED_PLAN
    from approvals.plan import load_plan

    return load_plan(PACKAGED_PLAN)


def address(official_id: str) -> str:
    """The official's email address in the shipped plan (plans/lang-son.yaml)."""
    return str(_plan().official(official_id).email)


ASK = "Cần phê duyệt"
SUBMIT = "Cần gửi nội dung"
SUBMIT_EN = "Submission needed"  # the lead agency's coordinator reads English (plans/lang-son.yaml)
RESUBMIT = "Cần chỉnh sửa"
OFFICIALS_AT_ONCE = 4  # officials acting at the same moment, each from their own email


def reporters() -> dict[str, str]:
    """Each unit that owes the annual report today (every unit in force), with the officer it
    is asked through: the plan's `unit.reporter` of that unit."""
    from approvals.clock.deadlines import local_day
    from approvals.routing.steps import stage_of

    plan = _plan()
    today = local_day(plan, dt.datetime.now(dt.UTC))
    stage = stage_of(plan, "annual", "annual_report")
    return {unit: plan.holders(stage.requester, today, unit=unit)[0].id for unit in plan.branches(stage, today)}


class Inbox:
    """The links officials received, each taken once."""

    def __init__(self, stack, year: int):
        self.stack, self.year, self.used = stack, year, set()
        self.lock = threading.Lock()  # officials act at once (report_every_unit)

    def link(self, official: str, subject: str, stage: str) -> str:
        def fresh(r) -> bool:
            return (
                address(official) in r.envelope_to
                and subject in r.subject
                and stage in r.subject
                and str(self.year) in r.subject
                and any(link not in self.used for link in LINK.findall(r.text))
            )

        while True:
            email = self.stack.smtp.wait_for(fresh, timeout=120)
            with self.lock:
                links = {link for link in LINK.findall(email.text) if link not in self.used}
                if links:  # another thread may have taken it meanwhile: look again
                    (link,) = links
                    self.used.add(link)
                    return link


def approve(link: str, comment: str = "") -> None:
    page = local_http.get(link)
    assert page.status_code == 200 and "Đồng ý" in page.text, (page.status_code, page.text[:300])
    answer = local_http.post(link, data={"outcome": "approve", "comment": comment})
    assert answer.status_code == 200, answer.text


def submit(link: str, **fields: str) -> None:
    page = local_http.get(link)
    assert page.status_code == 200 and "Nộp hồ sơ" in page.text, (page.status_code, page.text[:300])
    answer = local_http.post(link, data=fields)
    assert answer.status_code == 200 and "Đã nộp" in answer.text, answer.text


ORIENTATION = {
    "text": "Định hướng tuyên truyền năm về phát triển bền vững và năng lực cạnh tranh.",
    "field_themes": "Kinh tế xanh; chuyển đổi số; cải thiện môi trường đầu tư",
    "field_channels": "Báo và Đài Lạng Sơn, Cổng thông tin điện tử, truyền thanh cơ sở",
    "field_calendar": "Quý I: ra mắt chuyên mục; quý II–IV: mỗi tháng hai tin bài",
}


def submit_orientation(inbox: Inbox, **fields: str) -> None:
    """Stage 1: the press officer of the agency that orients the press (the DCST since the 2025
    split) submits the year's orientation (themes, channels, calendar) from the form link in
    their email."""
    submit(inbox.link("dcst_press_officer", SUBMIT, "1. "), **{**ORIENTATION, **fields})


def orient(inbox: Inbox, comment: str = "") -> None:
    """Stage 1 through the emailed links: submitted, then approved by the DCST's director."""
    submit_orientation(inbox)
    approve(inbox.link("dcst_director", ASK, "1. "), comment)


def acknowledge(link: str, comment: str = "") -> None:
    """A step the lead agency acknowledges (the Board's guidance): its page offers Tiếp nhận,
    never Từ chối."""
    page = local_http.get(link)
    assert page.status_code == 200 and "Tiếp nhận" in page.text and "Từ chối" not in page.text, page.text[:300]
    answer = local_http.post(link, data={"outcome": "approve", "comment": comment})
    assert answer.status_code == 200, answer.text


def ask_clarification(link: str, comment: str) -> None:
    """An acknowledged step sent back: its page offers Đề nghị làm rõ (a request for changes)."""
    page = local_http.get(link)
    assert page.status_code == 200 and "Đề nghị làm rõ" in page.text and "Từ chối" not in page.text
    answer = local_http.post(link, data={"outcome": "request_changes", "comment": comment})
    assert answer.status_code == 200, answer.text


def guide(inbox: Inbox, text: str = "Đề nghị nhấn mạnh nông nghiệp xanh và du lịch cửa khẩu.") -> None:
    """Stage 2 through the emailed links: the Board's head gives guidance, the lead agency's
    director acknowledges it."""
    submit(inbox.link("propaganda_head", SUBMIT, "2. "), text=text)
    acknowledge(inbox.link("dost_director", ASK, "2. "))


def rows(stack, year: int, sql: str) -> list:
    with stack.reading() as conn:
        return conn.execute(text(sql), {"p": str(year)}).all()


def resubmit(link: str, **fields: str) -> str:
    """Send a step again after a request for changes; the page shows the reviewers' comments
    (returned, to be checked)."""
    page = local_http.get(link)
    assert page.status_code == 200 and "Gửi lại sau khi chỉnh sửa" in page.text, page.text[:500]
    answer = local_http.post(link, data=fields)
    assert answer.status_code == 200 and "Đã gửi lại" in answer.text, answer.text
    return page.text


def send_back(link: str, comment: str) -> None:
    page = local_http.get(link)
    assert page.status_code == 200 and "Yêu cầu chỉnh sửa" in page.text
    answer = local_http.post(link, data={"outcome": "request_changes", "comment": comment})
    assert answer.status_code == 200, answer.text


def report_every_unit(
    inbox: Inbox, *, returned: dict[str, str] | None = None, silent: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Stage 7 through the emailed links: every unit's officer submits its report (but the units
    in `silent`, which send nothing), the lead agency's director decides each one (sending back
    those in `returned`, unit -> comment), the units sent back resubmit (their page shows the
    comment) and their next round is approved. Returns the units that reported and their officers."""
    returned = returned or {}
    units = {unit: officer for unit, officer in reporters().items() if unit not in silent}

    def report(unit: str) -> None:
        submit(inbox.link(units[unit], SUBMIT, "7. "), text=f"Báo cáo kết quả năm {inbox.year} ({unit})")

    def decide(_) -> str:
        link = inbox.link("dost_director", ASK, "7. ")
        page = local_http.get(link).text
        (unit,) = [u for u in units if f"({u})" in page]
        if unit in returned:
            send_back(link, returned[unit])
        else:
            approve(link)
        return unit

    def report_again(unit: str) -> None:
        page = resubmit(inbox.link(units[unit], RESUBMIT, "7. "), text=f"Báo cáo đã bổ sung ({unit})")
        assert returned[unit] in page

    with ThreadPoolExecutor(OFFICIALS_AT_ONCE) as officials:
        list(officials.map(report, units))
        decided = list(officials.map(decide, units))
        assert sorted(decided) == sorted(units)  # each unit's report reached the director once
        list(officials.map(report_again, returned))
        list(officials.map(lambda _: approve(inbox.link("dost_director", ASK, "7. ")), returned))
    return units


def consolidate(inbox: Inbox, summary: str = "") -> str:
    """Stage 8 through the emailed links: the lead agency's coordinator (who reads English)
    opens the consolidation form, submits the draft with a summary (or the one the form
    suggests), and the director approves it. Returns the form page the coordinator saw."""
    link = inbox.link("dost_coordinator", SUBMIT_EN, "8. ")
    page = local_http.get(link)
    shown = html.unescape(page.text)
    assert page.status_code == 200 and "The consolidated report's draft" in shown, shown[:300]
    suggested = re.search(r'<textarea id="text"[^>]*>([^<]*)</textarea>', page.text).group(1)
    answer = local_http.post(
        link, data={"text": summary or html.unescape(suggested), "lang": "en"}
    )  # as the form sends it
    assert answer.status_code == 200 and "Submitted" in answer.text, answer.text
    approve(inbox.link("dost_director", ASK, "8. "))
    confirm_on_the_phone(inbox)
    return shown


def confirm_on_the_phone(inbox: Inbox) -> None:
    """The director, asked on the phone to sign the approved report of the year, confirms."""
    phone = inbox.stack.phone
    phone.confirm(asked_on_the_phone(phone, inbox.year).transaction_id)


def through_the_budget(inbox: Inbox) -> None:
    """Stages 1 to 5 of the annual chain through the emailed links, everything approved: the
    orientation, the Board's guidance (acknowledged), the materials, each outlet's plan, a budget under the
    threshold."""
    year = inbox.year
    orient(inbox)
    guide(inbox)
    submit(inbox.link("dof_planning_officer", SUBMIT, "3. "), text=f"Tài liệu {year}")
    approve(inbox.link("dof_director", ASK, "3. "))
    outlets = {
        "newspaper_radio_tv_editor": "newspaper_radio_tv_head",
        "literature_arts_editor": "literature_arts_chair",
        "portal_editor": "portal_head",
    }
    for editor in outlets:
        submit(inbox.link(editor, SUBMIT, "4. "), text=f"Kế hoạch sản xuất {year} của {editor}")
    for head in outlets.values():
        approve(inbox.link(head, ASK, "4. "))
    for _ in outlets:
        approve(inbox.link("dost_director", ASK, "4. "))
    submit(inbox.link("dof_budget_officer", SUBMIT, "5. "), text="Phân bổ kinh phí", amount="900.000.000")
    approve(inbox.link("dof_director", ASK, "5. "))


def after_a_rejected_orientation(stack, year: int, run_id) -> None:
    """Stage 1 rejected: what needs it is skipped, and the annual report, which stands on its own
    date (1 October of that year), is scheduled; the run waits for it, suspended."""
    stages = stack.wait_for_stages(
        year,
        {
            "dic_direction": "rejected",
            "propaganda_guidance": "skipped",
            "finance_allocation": "skipped",
            "implementation": "skipped",
            "annual_report": "scheduled",
        },
    )
    assert set(stages) == {
        "dic_direction",
        "propaganda_guidance",
        "materials",
        "outlet_plans",
        "finance_allocation",
        "implementation",
        "annual_report",
    }
    assert stack.wait_for_state(run_id, {"Suspended"}).name == "Suspended"
