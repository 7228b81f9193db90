"""The implementation period's own cycles on real parts: an economy cycle started by the
service for an event a coordinator records through the API, and a month's culture-society
cycle; in both, each outlet submits from its emailed link and its own head approves."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import text

from tests.support import local_http
from tests.support.officials import ASK, SUBMIT, Inbox, approve, submit

pytestmark = pytest.mark.e2e

OUTLETS = [("newspaper_radio_tv_editor", "newspaper_radio_tv_head"), ("portal_editor", "portal_head")]


def _each_outlet_submits_and_its_head_approves(inbox: Inbox, stage: str, what: str) -> None:
    for editor, _ in OUTLETS:
        submit(inbox.link(editor, SUBMIT, stage), text=f"{what} của {editor}")
    for _, head in OUTLETS:
        approve(inbox.link(head, ASK, stage))


def _wait_for_run(stack, sql: str, params: dict, timeout: float = 60) -> str:
    """The flow run that waits on the first request a query finds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with stack.reading() as conn:
            found = conn.execute(text(sql), params).scalar()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"no run waits yet; web log:\n{stack.log('web')[-2000:]}")


def test_an_event_recorded_through_the_api_gets_its_economy_cycle(stack):
    year = stack.year(5)
    token = stack.api_token()
    name = f"Hội chợ thương mại quốc tế Việt – Trung {year} ({uuid.uuid4().hex[:6]})"
    created = local_http.post(
        f"{stack.base_url}/api/v1/events",
        headers={"Authorization": f"Bearer {token}"},
        json={"name": name, "starts_on": f"{year}-10-20", "description": "Đồng Đăng, Lạng Sơn"},
    )
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]

    # The service starts the event's run; the outlets are asked for their coverage plans.
    run_id = _wait_for_run(
        stack,
        "SELECT r.waiter_ref FROM approval_request r JOIN cycle c ON c.id = r.cycle_id "
        "JOIN economic_event e ON e.cycle_id = c.id WHERE e.id = :e",
        {"e": uuid.UUID(event_id).hex if stack.sandbox.backend == "sqlite" else event_id},
    )
    inbox = Inbox(stack, year)
    _each_outlet_submits_and_its_head_approves(inbox, "1. Kế hoạch đưa tin", "Kế hoạch đưa tin hội chợ")
    stack.wait_for_state(uuid.UUID(run_id), {"Completed"}, timeout=120)

    listed = local_http.get(f"{stack.base_url}/api/v1/events", headers={"Authorization": f"Bearer {token}"}).json()
    (event,) = [e for e in listed if e["id"] == event_id]
    assert event["cycle_id"] is not None
    with stack.reading() as conn:
        rows = conn.execute(
            text(
                "SELECT r.subject, r.status FROM approval_request r JOIN cycle c "
                "ON c.id = r.cycle_id WHERE c.kind = 'economy_event' AND c.period = :p "
                "ORDER BY r.subject"
            ),
            {"p": f"{year}-10-20-{uuid.UUID(event_id).hex[:8]}"},
        ).all()
    assert rows == [("lang_son_newspaper_radio_tv", "approved"), ("provincial_web_portal", "approved")]


def test_a_month_of_culture_society_content(stack):
    month = f"{stack.year(6)}-03"
    run_id = stack.start_run("culture-society-cycle/culture-society-cycle", {"month": month})
    inbox = Inbox(stack, month)
    _each_outlet_submits_and_its_head_approves(inbox, "1. Sản phẩm truyền thông", "Chuyên mục văn hóa tháng 3")
    state = stack.wait_for_state(run_id, {"Completed"}, timeout=120)
    assert state.name == "Completed"
    with stack.reading() as conn:
        stages = conn.execute(
            text(
                "SELECT s.stage, s.status FROM cycle_stage s JOIN cycle c ON c.id = s.cycle_id "
                "WHERE c.kind = 'culture_society_monthly' AND c.period = :p"
            ),
            {"p": month},
        ).all()
    assert stages == [("monthly_production", "done")]


def test_a_problem_goes_before_the_ppc_and_one_decision_settles_it(stack):
    token = stack.api_token()
    title = f"Vướng mắc kinh phí in ấn {uuid.uuid4().hex[:6]}"
    created = local_http.post(
        f"{stack.base_url}/api/v1/problems",
        headers={"Authorization": f"Bearer {token}"},
        json={"title": title, "description": "Chưa được phân bổ kinh phí quý IV.", "unit": "dost"},
    )
    assert created.status_code == 201, created.text
    problem_id = created.json()["id"]

    # The PPC's vice-chair in charge is asked; the page shows the problem.
    ask = stack.smtp.wait_for(
        lambda r: (
            "phochutich@lang-son.example" in r.envelope_to
            and "E. UBND tỉnh xử lý vướng mắc" in r.subject
            and uuid.UUID(problem_id).hex[:8] in r.subject
        ),
        timeout=120,
    )
    (link,) = set(re.findall(r"(http://127\.0\.0\.1:\d+/a/[A-Za-z0-9_-]+)", ask.text))
    page = local_http.get(link)
    assert title in page.text and "Chưa được phân bổ kinh phí quý IV." in page.text
    listed = local_http.get(f"{stack.base_url}/api/v1/problems", headers={"Authorization": f"Bearer {token}"}).json()
    (problem,) = [p for p in listed if p["id"] == problem_id]
    assert problem["cycle_id"] is not None
    (step,) = local_http.get(
        f"{stack.base_url}/api/v1/requests?cycle_id={problem['cycle_id']}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert step["stage"] == "ppc_resolution" and step["waiting_on"] == ["ppc_vice_chair"]  # the chair is not asked

    # A coordinator escalates it: the chair, the stage's superior, is asked too (either may decide).
    escalated = local_http.post(
        f"{stack.base_url}/api/v1/requests/{step['id']}/escalate", headers={"Authorization": f"Bearer {token}"}
    )
    assert escalated.status_code == 200 and escalated.json()["notified"] == ["ppc_chair"], escalated.text
    stack.smtp.wait_for(
        lambda r: (
            "chutich@lang-son.example" in r.envelope_to
            and "E. UBND tỉnh xử lý vướng mắc" in r.subject
            and "[Chuyển đến đồng chí" in r.subject
            and uuid.UUID(problem_id).hex[:8] in r.subject
        )
    )

    # The vice-chair's decision settles it: the chair is told the step is closed.
    assert (
        local_http.post(link, data={"outcome": "approve", "comment": "Giao Sở Tài chính bổ sung."}).status_code == 200
    )
    closed = stack.smtp.wait_for(
        lambda r: (
            "chutich@lang-son.example" in r.envelope_to
            and "[Đã xong]" in r.subject
            and uuid.UUID(problem_id).hex[:8] in r.subject
        )
    )
    assert "không cần thao tác thêm" in closed.text
    with stack.reading() as conn:
        run_id = conn.execute(
            text("SELECT r.waiter_ref FROM approval_request r WHERE r.cycle_id = :c"),
            {"c": uuid.UUID(problem["cycle_id"]).hex if stack.sandbox.backend == "sqlite" else problem["cycle_id"]},
        ).scalar_one()
    stack.wait_for_state(uuid.UUID(run_id), {"Completed"}, timeout=120)
