"""Decisions, escalations, expiries and cycle transitions reach Prefect as events (relayed from
the audit log, on a real Prefect server): each once, in order, nothing lost while Prefect is out
of reach, and a relay that died after sending is not a duplicate."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import delete, update

from approvals import audit
from approvals.db import utcnow
from approvals.models import RelayCursor
from service.event_relay import CURSOR, relay_once, send_to_prefect


@pytest.fixture
def prefect_api(prefect_server):
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        yield prefect_server.api_url


async def _events_about(resource_id: str, *, expect: int | None = None, timeout: float = 60) -> list[dict]:
    """The events Prefect has stored about a resource; with `expect`, once it has that many (the
    server stores what it receives a moment later, through its event pipeline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with get_client() as client:
        while True:
            answer = await client._client.post(
                "/events/filter",
                json={
                    "filter": {
                        "resource": {"id": [resource_id]},
                        "occurred": {"since": (utcnow() - dt.timedelta(days=1)).isoformat()},
                    },
                    "limit": 50,
                },
            )
            answer.raise_for_status()
            events = answer.json()["events"]
            if expect is None or len(events) >= expect or asyncio.get_running_loop().time() > deadline:
                return events
            await asyncio.sleep(0.2)


async def _audit(database, *rows: tuple[str, str, str, dict]) -> None:
    async with database.transaction() as session:
        for action, entity, entity_id, data in rows:
            await audit.append(
                session, actor="official:dost_director", action=action, entity=entity, entity_id=entity_id, data=data
            )


async def _relay_all(database, send) -> int:
    total = 0
    while sent := await relay_once(database, send):
        total += sent
    return total


async def test_audit_rows_become_prefect_events_once_and_in_order(database, prefect_api):
    async with database.transaction() as session:  # the relay starts from now
        await session.execute(delete(RelayCursor).where(RelayCursor.name == CURSOR))
    await relay_once(database, send_to_prefect)
    request_id, cycle_id = str(uuid.uuid4()), str(uuid.uuid4())
    await _audit(
        database,
        ("decision.recorded", "approval_request", request_id, {"outcome": "approve", "settled": "approve"}),
        ("request.escalated", "approval_request", request_id, {"to": ["ppc_vice_chair"]}),
        ("request.opened", "approval_request", request_id, {}),  # not one of the relayed kinds
        ("cycle.finished", "cycle", cycle_id, {"run": "r"}),
    )
    await _relay_all(database, send_to_prefect)
    about_request = await _events_about(f"kehoach.approval-request.{request_id}", expect=2)
    assert sorted(e["event"] for e in about_request) == ["kehoach.decision.recorded", "kehoach.request.escalated"]
    decided = next(e for e in about_request if e["event"] == "kehoach.decision.recorded")
    assert (
        decided["payload"]["outcome"] == "approve" and decided["resource"]["kehoach.actor"] == "official:dost_director"
    )
    assert [e["event"] for e in await _events_about(f"kehoach.cycle.{cycle_id}", expect=1)] == [
        "kehoach.cycle.finished"
    ]

    # A relay that died after sending, before moving its cursor, sends the batch again: stored once.
    async with database.transaction() as session:
        await session.execute(
            update(RelayCursor)
            .where(RelayCursor.name == CURSOR)
            .values(last_id=RelayCursor.last_id - 3, lease_until=None)
        )
    assert await _relay_all(database, send_to_prefect) == 2  # the escalation and the end, sent again...
    marker = str(uuid.uuid4())  # ...and once a later event is stored, the earlier ones were stored once
    await _audit(database, ("decision.recorded", "approval_request", marker, {}))
    await _relay_all(database, send_to_prefect)
    await _events_about(f"kehoach.approval-request.{marker}", expect=1)
    assert len(await _events_about(f"kehoach.approval-request.{request_id}")) == 2
    assert len(await _events_about(f"kehoach.cycle.{cycle_id}")) == 1


async def test_nothing_is_lost_while_prefect_is_out_of_reach(database, prefect_api):
    await relay_once(database, send_to_prefect)  # caught up
    cycle_id = str(uuid.uuid4())
    await _audit(database, ("cycle.attention", "cycle", cycle_id, {"reason": "run_crashed"}))
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}), pytest.raises(httpx.HTTPError):
        await relay_once(database, send_to_prefect)
    assert await _events_about(f"kehoach.cycle.{cycle_id}") == []
    assert await _relay_all(database, send_to_prefect) == 1  # Prefect is back: the event goes out
    (event,) = await _events_about(f"kehoach.cycle.{cycle_id}", expect=1)
    assert event["event"] == "kehoach.cycle.attention" and event["payload"]["reason"] == "run_crashed"


async def test_two_relays_at_once_take_turns(database, prefect_api):
    sent: list[list[dict]] = []

    async def record(events):
        sent.append(events)

    await relay_once(database, record)
    async with database.transaction() as session:  # another process holds the cursor's lease
        await session.execute(
            update(RelayCursor).where(RelayCursor.name == CURSOR).values(lease_until=utcnow() + dt.timedelta(minutes=1))
        )
    await _audit(database, ("cycle.cancelled", "cycle", str(uuid.uuid4()), {}))
    assert await relay_once(database, record) == 0  # it waits for its turn
    async with database.transaction() as session:
        await session.execute(update(RelayCursor).where(RelayCursor.name == CURSOR).values(lease_until=None))
    assert await relay_once(database, record) == 1
