"""Coordinators' records through the API: delegations, economic events, and the validation every
action shares; each changes the database, writes its audit rows and queues its emails in one
transaction, or changes nothing at all."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
from sqlalchemy import select

from approvals.models import Delegation, EconomicEvent
from tests.api.conftest import open_request
from tests.api.db_reads import audit_rows, scalar_one, snapshot

# Delegations ---------------------------------------------------------------------------------


async def test_delegations_are_created_listed_and_revoked(client, accounts, database):
    start = dt.date(2091, 3, 1)
    body = {
        "delegator": "ppc_chair",
        "delegate": "ppc_vice_chair",
        "role": "ppc.chair",
        "valid_from": start.isoformat(),
        "valid_to": (start + dt.timedelta(days=10)).isoformat(),
        "reason": "Đi công tác",
    }
    created = await client.post("/api/v1/delegations", headers=accounts.as_coordinator, json=body)
    assert created.status_code == 201, created.text
    delegation = created.json()
    assert delegation["created_by"] == f"api:{accounts.coordinator_name}"

    listed = await client.get("/api/v1/delegations", headers=accounts.as_viewer)
    assert delegation["id"] in {d["id"] for d in listed.json()}

    cycle = {**body, "delegator": "ppc_vice_chair", "delegate": "ppc_chair", "role": None}
    refused = await client.post("/api/v1/delegations", headers=accounts.as_coordinator, json=cycle)
    assert refused.status_code == 422 and "cycle" in refused.json()["errors"][0]["msg"]

    revoked = await client.post(f"/api/v1/delegations/{delegation['id']}/revoke", headers=accounts.as_coordinator)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    again = await client.post(f"/api/v1/delegations/{delegation['id']}/revoke", headers=accounts.as_coordinator)
    assert again.status_code == 409
    row = await scalar_one(database, select(Delegation).where(Delegation.id == uuid.UUID(delegation["id"])))
    assert row.revoked_at is not None
    actions = [e.action for e in await audit_rows(database, delegation["id"])]
    assert actions == ["delegation.created", "delegation.revoked"]


async def test_delegation_refusals_say_why(client, accounts):
    base = {
        "delegator": "ppc_chair",
        "delegate": "ppc_vice_chair",
        "valid_from": "2092-01-01",
        "valid_to": "2092-01-05",
    }
    for change, words in [
        ({"delegate": "ppc_chair"}, "themselves"),
        ({"delegator": "no_such_person"}, "unknown"),
        ({"role": "finance.director"}, "does not hold"),
        ({"valid_to": "2091-12-01"}, "before"),
    ]:
        response = await client.post("/api/v1/delegations", headers=accounts.as_coordinator, json={**base, **change})
        assert response.status_code == 422, (change, response.text)
        assert words in response.json()["errors"][0]["msg"]


# Events --------------------------------------------------------------------------------------


async def test_an_economic_event_is_recorded_and_audited(client, accounts, database):
    response = await client.post(
        "/api/v1/events",
        headers=accounts.as_coordinator,
        json={
            "name": "Hội chợ thương mại Việt - Trung",
            "starts_on": "2091-10-05",
            "description": "Tại cửa khẩu Hữu Nghị",
        },
    )
    assert response.status_code == 201, response.text
    event = response.json()
    assert event["recorded_by"] == f"api:{accounts.coordinator_name}"
    row = await scalar_one(database, select(EconomicEvent).where(EconomicEvent.id == uuid.UUID(event["id"])))
    assert row.name == "Hội chợ thương mại Việt - Trung"
    assert [e.action for e in await audit_rows(database, event["id"])] == ["event.recorded"]
    listed = await client.get("/api/v1/events", headers=accounts.as_viewer)
    assert event["id"] in {e["id"] for e in listed.json()}


# Validation ----------------------------------------------------------------------------------


async def test_bad_input_is_422_with_the_field_path(client, accounts, database):
    before = await snapshot(database)
    cases = [
        ("post", "/api/v1/events", {"name": "x" * 301, "starts_on": "2091-01-01"}, ["body", "name"]),
        ("post", "/api/v1/events", {"name": "Hội chợ\r\nBcc: x@y", "starts_on": "2091-01-01"}, ["body", "name"]),
        ("post", "/api/v1/events", {"name": "   ", "starts_on": "2091-01-01"}, ["body", "name"]),
        ("post", "/api/v1/events", {"name": "ok", "starts_on": "2091-02-30"}, ["body", "starts_on"]),
        (
            "post",
            "/api/v1/events",
            {"name": "ok", "starts_on": "2091-01-01", "description": "d" * 4001},
            ["body", "description"],
        ),
        ("post", "/api/v1/events", {"name": "ok", "starts_on": "2091-01-01", "extra": 1}, ["body", "extra"]),
        (
            "post",
            "/api/v1/delegations",
            {
                "delegator": "PPC Chair",
                "delegate": "ppc_vice_chair",
                "valid_from": "2091-01-01",
                "valid_to": "2091-01-02",
            },
            ["body", "delegator"],
        ),
        ("post", f"/api/v1/cycles/{uuid.uuid4()}/cancel", {"reason": " \n "}, ["body", "reason"]),
        ("post", f"/api/v1/cycles/{uuid.uuid4()}/cancel", {"reason": "a\x00b"}, ["body", "reason"]),
        ("post", "/api/v1/requests/remind", {"request_ids": []}, ["body", "request_ids"]),
        ("post", "/api/v1/requests/not-a-uuid/remind", None, ["path", "request_id"]),
        ("get", "/api/v1/requests?limit=0", None, ["query", "limit"]),
        ("get", "/api/v1/requests?agency=DROP%20TABLE", None, ["query", "agency"]),
        ("get", "/api/v1/requests?status=approved_by_time", None, ["query", "status"]),
    ]
    for method, path, body, loc in cases:
        response = await client.request(method.upper(), path, headers=accounts.as_coordinator, json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert [e["loc"] for e in response.json()["errors"]] == [loc], (path, body, response.json())
    assert await snapshot(database) == before


async def test_an_action_whose_email_cannot_be_queued_changes_nothing(app, accounts, database, settings, monkeypatch):
    opened = await open_request(database, settings)
    before = await snapshot(database)

    def broken(*args, **kwargs):
        raise RuntimeError("template broken")

    monkeypatch.setattr(app.state.kehoach.renderer, "render", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kehoach.test") as client:
        response = await client.post(f"/api/v1/requests/{opened.request_id}/remind", headers=accounts.as_coordinator)
    assert response.status_code == 500
    assert await snapshot(database) == before  # no new link, no audit row, no email
