"""What coordinators and viewers read: cycles and stages, pending requests, who is waited
on, and a request's whole history."""

from __future__ import annotations

import datetime as dt

from approvals import coordination
from approvals.db import utcnow
from approvals.plan import load_plan
from approvals.routing.decisions import decide
from approvals.statuses import Outcome
from tests.api.conftest import live_token, open_request


async def test_a_cycle_lists_the_plans_stages_with_their_progress(client, accounts, database, settings):
    opened = await open_request(
        database, settings, cycle_kind="annual", stage_id="dic_direction", period="2094", starts_on=dt.date(2094, 1, 15)
    )
    listed = await client.get("/api/v1/cycles?kind=annual&year=2094", headers=accounts.as_viewer)
    assert listed.status_code == 200
    [cycle] = listed.json()
    assert cycle["id"] == str(opened.cycle_id) and cycle["period"] == "2094" and cycle["cancelled_at"] is None
    assert cycle["name"] == "Chu kỳ hằng năm 2094"
    stages = cycle["stages"]
    assert [s["stage"] for s in stages][:3] == ["dic_direction", "propaganda_guidance", "materials"]
    assert (stages[0]["status"], stages[0]["requests_total"], stages[0]["requests_settled"]) == ("waiting", 1, 0)
    assert {s["status"] for s in stages[1:]} == {"not_started"}
    one = await client.get(f"/api/v1/cycles/{opened.cycle_id}/stages", headers=accounts.as_viewer)
    assert one.json() == stages


async def test_pending_requests_filter_by_agency_stage_and_lateness(client, accounts, database, settings):
    late = await open_request(database, settings, days_late=3)
    on_time = await open_request(database, settings)

    async def ids(query: str) -> set[str]:
        response = await client.get(f"/api/v1/requests?{query}&limit=500", headers=accounts.as_viewer)
        assert response.status_code == 200, response.text
        return {r["id"] for r in response.json()}

    assert str(late.request_id) in await ids("agency=dost&stage=ppc_resolution&overdue=true")
    assert str(on_time.request_id) not in await ids("agency=dost&stage=ppc_resolution&overdue=true")
    assert str(on_time.request_id) in await ids("agency=dost&overdue=false")
    assert str(late.request_id) not in await ids("agency=dof")
    assert not await ids(f"cycle_id={late.cycle_id}&stage=dic_direction")
    [found] = (await client.get(f"/api/v1/requests?cycle_id={late.cycle_id}", headers=accounts.as_viewer)).json()
    assert found["overdue"] is True and found["waiting_on"] == ["ppc_vice_chair"]  # the one approver of PPC resolution


async def test_waiting_on_counts_each_officials_pending_and_overdue_steps(client, accounts, database, settings):
    await open_request(database, settings, days_late=40)
    response = await client.get("/api/v1/waiting-on", headers=accounts.as_viewer)
    assert response.status_code == 200
    rows = {r["official_id"]: r for r in response.json()}
    vice = rows["ppc_vice_chair"]
    assert vice["name"] == "Dương Xuân Huyên" and vice["agency"] == "ppc"
    assert vice["pending"] >= vice["overdue"] >= 1
    oldest = dt.datetime.fromisoformat(vice["oldest_due_at"])
    assert oldest <= utcnow() - dt.timedelta(days=40)
    ordered = [dt.datetime.fromisoformat(r["oldest_due_at"]) for r in response.json()]
    assert ordered == sorted(ordered)


async def test_a_requests_history_has_assignments_decisions_and_audit(client, accounts, database, settings):
    day = dt.datetime(2093, 5, 2, 3, 0, tzinfo=dt.UTC)
    delegation = await client.post(
        "/api/v1/delegations",
        headers=accounts.as_coordinator,
        json={
            "delegator": "ppc_chair",
            "delegate": "dost_press_officer",
            "role": "ppc.chair",
            "valid_from": "2093-05-01",
            "valid_to": "2093-05-10",
            "reason": "Nghỉ phép",
        },
    )
    assert delegation.status_code == 201, delegation.text
    opened = await open_request(database, settings, now=day, starts_on=day.date())
    assert set(opened.assignments) == {"ppc_vice_chair"}  # the vice-chair decides; the chair is the superior
    # Escalated that day (the coordinator's action, as the sweep does at the due time), the step
    # goes to the chair's role too: her delegate is asked, on her behalf.
    async with database.transaction() as session:
        acted = await coordination.escalate(
            session,
            plan=load_plan(settings.plan_file),
            secret=settings.link_secret_bytes(),
            request_id=opened.request_id,
            by=f"api:{accounts.coordinator_name}",
            now=day,
            link_ttl=dt.timedelta(days=30),
        )
    assert [(n.official.id, n.assignment.on_behalf_of) for n in acted.notify] == [("dost_press_officer", "ppc_chair")]
    token = await live_token(database, settings, acted.notify[0].assignment.id)
    async with database.transaction() as session:
        await decide(
            session, token=token, outcome=Outcome.reject, comment="Đề nghị bổ sung số liệu", now=day, plan=None
        )

    response = await client.get(f"/api/v1/requests/{opened.request_id}", headers=accounts.as_viewer)
    assert response.status_code == 200, response.text
    history = response.json()
    assert history["request"]["status"] == "rejected"
    assignments = {a["official_id"]: a for a in history["assignments"]}
    assert assignments["dost_press_officer"]["on_behalf_of"] == "ppc_chair"
    assert assignments["dost_press_officer"]["status"] == "decided"
    assert assignments["ppc_vice_chair"]["status"] == "closed"
    assert assignments["ppc_vice_chair"]["official_name"] == "Dương Xuân Huyên"
    [decision] = history["decisions"]
    assert (decision["official_id"], decision["on_behalf_of"], decision["outcome"], decision["comment"]) == (
        "dost_press_officer",
        "ppc_chair",
        "reject",
        "Đề nghị bổ sung số liệu",
    )
    assert [e["action"] for e in history["audit"]] == ["request.opened", "request.escalated", "decision.recorded"]
    assert history["audit"][1]["data"]["to"] == ["dost_press_officer"]
    assert history["audit"][2]["data"]["on_behalf_of"] == "ppc_chair"
    revoked = await client.post(
        f"/api/v1/delegations/{delegation.json()['id']}/revoke", headers=accounts.as_coordinator
    )
    assert revoked.status_code == 200
