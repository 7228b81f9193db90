"""The implementation period's own cycles on real parts: an economy cycle started by the
service for an event a coordinator records through the API, and a month's culture-society
cycle; in both, each outlet submits from its emailed link and its own head approves."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import text

from tests.test_e2e_chain import ASK, SUBMIT, Inbox, _approve, _submit

pytestmark = pytest.mark.e2e

OUTLETS = [("newspaper_radio_tv_editor", "newspaper_radio_tv_head"), ("portal_editor", "portal_head")]


def _each_outlet_submits_and_its_head_approves(inbox: Inbox, stage: str, what: str) -> None:
    for editor, _ in OUTLETS:
        _submit(inbox.link(editor, SUBMIT, stage), text=f"{what} của {editor}")
    for _, head in OUTLETS:
        _approve(inbox.link(head, ASK, stage))


def _wait_for_run(stack, sql: str, params: dict, timeout: float = 60) -> str:
    """The flow run that waits on the first request a query finds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with stack.sandbox.engine.connect() as conn:
            found = conn.execute(text(sql), params).scalar()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"no run waits yet; web log:\n{stack.log('web')[-2000:]}")


def test_an_event_recorded_through_the_api_gets_its_economy_cycle(stack):
    year = stack.year(5)
    token = stack.api_token()
    name = f"Hội chợ thương mại quốc tế Việt – Trung {year} ({uuid.uuid4().hex[:6]})"
    created = httpx.post(f"{stack.base_url}/api/v1/events", headers={"Authorization": f"Bearer {token}"},
                         json={"name": name, "starts_on": f"{year}-10-20", "description": "Đồng Đăng, Lạng Sơn"})
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]

    # The service starts the event's run; the outlets are asked for their coverage plans.
    run_id = _wait_for_run(stack, "SELECT r.waiter_ref FROM approval_request r JOIN cycle c ON c.id = r.cycle_id "
                                  "JOIN economic_event e ON e.cycle_id = c.id WHERE e.id = :e",
                           {"e": uuid.UUID(event_id).hex if stack.sandbox.backend == "sqlite" else event_id})
    inbox = Inbox(stack, year)
    _each_outlet_submits_and_its_head_approves(inbox, "1. Kế hoạch đưa tin", "Kế hoạch đưa tin hội chợ")
    stack.wait_for_state(uuid.UUID(run_id), {"Completed"}, timeout=120)

    listed = httpx.get(f"{stack.base_url}/api/v1/events", headers={"Authorization": f"Bearer {token}"}).json()
    (event,) = [e for e in listed if e["id"] == event_id]
    assert event["cycle_id"] is not None
    with stack.sandbox.engine.connect() as conn:
        rows = conn.execute(text("SELECT r.subject, r.status FROM approval_request r JOIN cycle c "
                                 "ON c.id = r.cycle_id WHERE c.kind = 'economy_event' AND c.period = :p "
                                 "ORDER BY r.subject"), {"p": f"{year}-10-20-{uuid.UUID(event_id).hex[:8]}"}).all()
    assert rows == [("lang_son_newspaper_radio_tv", "approved"), ("provincial_web_portal", "approved")]


def test_a_month_of_culture_society_content(stack):
    month = f"{stack.year(6)}-03"
    run_id = stack.start_run("culture-society-cycle/culture-society-cycle", {"month": month})
    inbox = Inbox(stack, month)
    _each_outlet_submits_and_its_head_approves(inbox, "1. Sản phẩm truyền thông", "Chuyên mục văn hóa tháng 3")
    state = stack.wait_for_state(run_id, {"Completed"}, timeout=120)
    assert state.name == "Completed"
    with stack.sandbox.engine.connect() as conn:
        stages = conn.execute(text("SELECT s.stage, s.status FROM cycle_stage s JOIN cycle c ON c.id = s.cycle_id "
                                   "WHERE c.kind = 'culture_society_monthly' AND c.period = :p"), {"p": month}).all()
    assert stages == [("monthly_production", "done")]
