"""Coordinators' actions: each changes the database, writes its audit rows and queues its
emails in one transaction, or changes nothing at all."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select

from approvals.db import utcnow
from approvals.models import ApprovalRequest, Assignment, CycleStage
from approvals.routing.decisions import decide
from approvals.statuses import Outcome
from notifications.models import OutboxMessage
from tests.api.conftest import escalate, live_token, open_request
from tests.api.db_reads import audit_rows, scalar_one, scalars, snapshot


async def _assignments(database, request_id) -> dict[str, Assignment]:
    return {
        a.official_id: a for a in await scalars(database, select(Assignment).where(Assignment.request_id == request_id))
    }


async def _emails(database, assignment_ids) -> list[OutboxMessage]:
    rows = await scalars(database, select(OutboxMessage))
    ids = {str(i) for i in assignment_ids}
    return [m for m in rows if m.idempotency_key.split(":")[1] in ids]


async def _settle(database, settings, opened, official="ppc_vice_chair"):
    token = await live_token(database, settings, opened.assignments[official])
    async with database.transaction() as session:
        await decide(session, token=token, outcome=Outcome.approve, comment="", now=utcnow())


# Remind --------------------------------------------------------------------------------


async def test_remind_rotates_the_links_and_queues_reminders(client, accounts, database, settings):
    # Escalated, the PPC resolution step waits on two approvers: the vice-chair and the chair.
    opened = await escalate(client, accounts, database, await open_request(database, settings))
    before = await _assignments(database, opened.request_id)
    assert set(before) == {"ppc_chair", "ppc_vice_chair"}
    old_tokens = {o: await live_token(database, settings, a.id) for o, a in before.items()}
    queued_before = {m.id for m in await _emails(database, [a.id for a in before.values()])}  # the escalation's

    response = await client.post(f"/api/v1/requests/{opened.request_id}/remind", headers=accounts.as_coordinator)
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(body["notified"]) == ["ppc_chair", "ppc_vice_chair"] and body["emails_queued"] == 2

    after = await _assignments(database, opened.request_id)
    for official, assignment in after.items():
        assert assignment.token_generation == before[official].token_generation + 1
        assert assignment.token_hash != before[official].token_hash  # the old link stops working
    kind = "reminder"
    emails = [m for m in await _emails(database, [a.id for a in after.values()]) if m.id not in queued_before]
    assert sorted((m.kind, m.recipients[0]["email"]) for m in emails) == [
        (kind, "chutich@lang-son.example"),
        (kind, "phochutich@lang-son.example"),
    ]
    assert all(m.idempotency_key.endswith(":2") for m in emails)
    audit = await audit_rows(database, opened.request_id)
    assert audit[-1].action == "request.reminded"
    assert audit[-1].actor == f"api:{accounts.coordinator_name}"
    # the old link is dead, the new one decides
    async with database.transaction() as session:
        result = await decide(
            session,
            token=await live_token(database, settings, after["ppc_chair"].id),
            outcome=Outcome.approve,
            comment="",
            now=utcnow(),
        )
    assert result.settled is Outcome.approve
    assert old_tokens["ppc_chair"] != await live_token(database, settings, after["ppc_chair"].id)


async def test_remind_on_a_decided_request_is_409_and_changes_nothing(client, accounts, database, settings):
    opened = await open_request(database, settings)
    await _settle(database, settings, opened)
    before = await snapshot(database)
    response = await client.post(f"/api/v1/requests/{opened.request_id}/remind", headers=accounts.as_coordinator)
    assert response.status_code == 409
    assert "already settled" in response.json()["detail"]
    assert await snapshot(database) == before


async def test_unknown_ids_are_404(client, accounts):
    unknown = uuid.uuid4()
    for path, body in [
        (f"/api/v1/requests/{unknown}/remind", None),
        (f"/api/v1/requests/{unknown}/escalate", None),
        (f"/api/v1/assignments/{unknown}/reassign", {"to_official": "ppc_chair"}),
        (f"/api/v1/cycles/{unknown}/cancel", {"reason": "x"}),
        (f"/api/v1/delegations/{unknown}/revoke", None),
    ]:
        response = await client.post(path, headers=accounts.as_coordinator, json=body)
        assert response.status_code == 404, (path, response.text)
    for path in (f"/api/v1/requests/{unknown}", f"/api/v1/cycles/{unknown}", f"/api/v1/cycles/{unknown}/stages"):
        assert (await client.get(path, headers=accounts.as_viewer)).status_code == 404


async def test_bulk_remind_is_all_or_nothing(client, accounts, database, settings):
    first, second, decided = [await open_request(database, settings) for _ in range(3)]
    first = await escalate(client, accounts, database, first)  # two approvers (vice-chair, chair); second has one
    await _settle(database, settings, decided)
    before = await snapshot(database)
    response = await client.post(
        "/api/v1/requests/remind",
        headers=accounts.as_coordinator,
        json={"request_ids": [str(first.request_id), str(decided.request_id), str(second.request_id)]},
    )
    assert response.status_code == 409
    assert await snapshot(database) == before  # nobody reminded, no audit row, no email

    response = await client.post(
        "/api/v1/requests/remind",
        headers=accounts.as_coordinator,
        json={"request_ids": [str(first.request_id), str(second.request_id)]},
    )
    assert response.status_code == 200, response.text
    reminded = response.json()["reminded"]
    assert {r["request_id"]: sorted(r["notified"]) for r in reminded} == {
        str(first.request_id): ["ppc_chair", "ppc_vice_chair"],
        str(second.request_id): ["ppc_vice_chair"],
    }
    assert sum(r["emails_queued"] for r in reminded) == 3
    audit, outbox, _ = await snapshot(database)
    assert (audit, outbox) == (before[0] + 2, before[1] + 3)  # an audit row per request, an email per approver


# Escalate --------------------------------------------------------------------------------


async def test_escalate_now_adds_the_superior_and_emails_them(client, accounts, database, settings):
    opened = await open_request(database, settings, cycle_kind="annual", stage_id="dic_direction")
    response = await client.post(f"/api/v1/requests/{opened.request_id}/escalate", headers=accounts.as_coordinator)
    assert response.status_code == 200, response.text
    assert response.json()["notified"] == ["ppc_vice_chair"]

    assignments = await _assignments(database, opened.request_id)
    assert {o: a.status for o, a in assignments.items()} == {"dcst_director": "pending", "ppc_vice_chair": "pending"}
    request = await scalar_one(database, select(ApprovalRequest).where(ApprovalRequest.id == opened.request_id))
    assert request.escalated_at is not None
    assert request.expires_at == request.due_at + dt.timedelta(
        days=7
    )  # escalated early: the grace runs from the due time
    emails = await _emails(database, [assignments["ppc_vice_chair"].id])
    assert [(m.kind, m.recipients[0]["email"]) for m in emails] == [("escalation", "phochutich@lang-son.example")]
    audit = await audit_rows(database, opened.request_id)
    assert (audit[-1].action, audit[-1].actor) == ("request.escalated", f"api:{accounts.coordinator_name}")

    again = await client.post(f"/api/v1/requests/{opened.request_id}/escalate", headers=accounts.as_coordinator)
    assert again.status_code == 409 and "already been escalated" in again.json()["detail"]


async def test_escalate_is_refused_when_the_superior_is_already_asked(client, accounts, database, settings):
    opened = await open_request(database, settings)  # PPC resolution: the vice-chair decides, the chair is its superior
    moved = await client.post(
        f"/api/v1/assignments/{opened.assignments['ppc_vice_chair']}/reassign",
        headers=accounts.as_coordinator,
        json={"to_official": "ppc_chair"},
    )
    assert moved.status_code == 200, moved.text  # the step is now the chair's: escalating would bring in nobody new
    before = await snapshot(database)
    response = await client.post(f"/api/v1/requests/{opened.request_id}/escalate", headers=accounts.as_coordinator)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["path", "request_id"]
    assert "ppc.chair" in response.json()["errors"][0]["msg"]
    assert await snapshot(database) == before


# Reassign --------------------------------------------------------------------------------


async def test_reassign_moves_the_link_and_emails_the_new_official(client, accounts, database, settings):
    opened = await open_request(database, settings, cycle_kind="annual", stage_id="dic_direction")
    old = opened.assignments["dcst_director"]  # stage 1: the press orientation, the DCST's since 2025
    response = await client.post(
        f"/api/v1/assignments/{old}/reassign", headers=accounts.as_coordinator, json={"to_official": "ppc_vice_chair"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["notified"] == ["ppc_vice_chair"] and response.json()["emails_queued"] == 1

    assignments = await _assignments(database, opened.request_id)
    assert assignments["dcst_director"].status == "reassigned"
    assert assignments["dcst_director"].replaced_by == assignments["ppc_vice_chair"].id
    emails = await _emails(database, [assignments["ppc_vice_chair"].id])
    assert [(m.kind, m.recipients[0]["email"]) for m in emails] == [("approval_request", "phochutich@lang-son.example")]
    audit = await audit_rows(database, opened.request_id)
    assert (audit[-1].action, audit[-1].actor) == ("assignment.reassigned", f"api:{accounts.coordinator_name}")


async def test_reassign_refusals_are_422_with_the_field(client, accounts, database, settings):
    opened = await escalate(
        client, accounts, database, await open_request(database, settings)
    )  # the chair is asked too
    assignment = opened.assignments["ppc_vice_chair"]
    for to, words in [("nobody_here", "cannot be resolved"), ("ppc_chair", "already asked")]:
        response = await client.post(
            f"/api/v1/assignments/{assignment}/reassign", headers=accounts.as_coordinator, json={"to_official": to}
        )
        assert response.status_code == 422, response.text
        error = response.json()["errors"][0]
        assert error["loc"] == ["body", "to_official"] and words in error["msg"]


async def test_reassign_after_the_decision_is_409(client, accounts, database, settings):
    opened = await escalate(
        client, accounts, database, await open_request(database, settings)
    )  # the chair is asked too
    await _settle(database, settings, opened, official="ppc_chair")  # the chair decides: the vice-chair's link closes
    response = await client.post(
        f"/api/v1/assignments/{opened.assignments['ppc_vice_chair']}/reassign",
        headers=accounts.as_coordinator,
        json={"to_official": "dost_director"},
    )
    assert response.status_code == 409


# Cancel a cycle --------------------------------------------------------------------------


async def test_cancel_cycle_expires_its_pending_requests(client, accounts, database, settings):
    period = f"c-{uuid.uuid4().hex[:10]}"
    first = await open_request(database, settings, cycle_kind="annual", stage_id="dic_direction", period=period)
    second = await open_request(database, settings, cycle_kind="annual", stage_id="materials", period=period)
    await _settle(database, settings, second, official=next(iter(second.assignments)))
    response = await client.post(
        f"/api/v1/cycles/{first.cycle_id}/cancel",
        headers=accounts.as_coordinator,
        json={"reason": "Kế hoạch được thay thế"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["expired_requests"] == [str(first.request_id)]

    statuses = {
        r.id: r.status
        for r in await scalars(database, select(ApprovalRequest).where(ApprovalRequest.cycle_id == first.cycle_id))
    }
    assert statuses == {first.request_id: "expired", second.request_id: "approved"}
    assert {a.status for a in (await _assignments(database, first.request_id)).values()} == {"closed"}
    stages = {
        s.stage: s.status
        for s in await scalars(database, select(CycleStage).where(CycleStage.cycle_id == first.cycle_id))
    }
    assert stages["dic_direction"] == "expired"
    cancelled = await audit_rows(database, first.cycle_id)
    assert [(e.action, e.actor) for e in cancelled] == [("cycle.cancelled", f"api:{accounts.coordinator_name}")]
    assert cancelled[0].data["reason"] == "Kế hoạch được thay thế"
    assert (await audit_rows(database, first.request_id))[-1].action == "request.expired"

    cycle = (await client.get(f"/api/v1/cycles/{first.cycle_id}", headers=accounts.as_viewer)).json()
    assert cycle["cancelled_at"] is not None
    again = await client.post(
        f"/api/v1/cycles/{first.cycle_id}/cancel", headers=accounts.as_coordinator, json={"reason": "again"}
    )
    assert again.status_code == 409
