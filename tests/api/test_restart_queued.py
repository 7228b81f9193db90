"""A coordinator's restart never waits on Prefect: the API and the dashboard queue it and answer
at once (this harness has no Prefect at all), asking twice queues it once, a finished cycle is
refused and nothing is queued, and the cycle shows the restart waiting. The service's delivery
of a queued restart to a real Prefect server is in tests/service/test_restart.py."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from approvals.db import utcnow
from approvals.models import AuditEvent, Cycle, Wake
from approvals.routing.stages import RESTART
from approvals.running import cycles
from tests.api.conftest import open_request


async def _stopped_cycle(database, settings) -> uuid.UUID:
    """A cycle whose run failed (it needs a coordinator)."""
    opened = await open_request(database, settings, cycle_kind="annual", stage_id="dic_direction")
    async with database.transaction() as session:
        await session.execute(update(Cycle).where(Cycle.id == opened.cycle_id).values(run_id=str(uuid.uuid4())))
        assert await cycles.needs_attention(
            session, opened.cycle_id, reason=cycles.Attention.run_failed, detail="boom", run_id=None, now=utcnow()
        )
    return opened.cycle_id


async def _restarts(database, cycle_id) -> tuple[list[Wake], list[str]]:
    async with database.sessions() as session:
        wakes = list(
            (
                await session.execute(
                    select(Wake).where(Wake.cycle_id == cycle_id, Wake.stage == RESTART).order_by(Wake.id)
                )
            ).scalars()
        )
        actions = list(
            (
                await session.execute(
                    select(AuditEvent.action).where(AuditEvent.entity_id == str(cycle_id)).order_by(AuditEvent.id)
                )
            ).scalars()
        )
    return wakes, actions


async def test_the_api_queues_a_restart_and_answers_at_once(client, accounts, database, settings):
    cycle_id = await _stopped_cycle(database, settings)
    # No Prefect is configured here: the restart that called it answered 503; queued, it is 202.
    answer = await client.post(f"/api/v1/cycles/{cycle_id}/resume", headers=accounts.as_coordinator)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["restart"]["status"] == "queued" and body["restart"]["forced"] is False
    assert body["restart"]["asked_by"] == f"api:{accounts.coordinator_name}" and body["restart"]["attempts"] == 0

    again = await client.post(
        f"/api/v1/cycles/{cycle_id}/resume", json={"force": True}, headers=accounts.as_coordinator
    )
    assert again.status_code == 202 and again.json()["restart"]["forced"] is True  # the same restart, now forced
    wakes, actions = await _restarts(database, cycle_id)
    assert [(w.status, w.reason) for w in wakes] == [("queued", "restart_forced")]
    assert actions.count("cycle.restart_asked") == 2 and "cycle.restarted" not in actions

    shown = (await client.get(f"/api/v1/cycles/{cycle_id}", headers=accounts.as_coordinator)).json()
    assert shown["attention"] == "run_failed"  # still stopped until a run takes it
    assert shown["restart"]["status"] == "queued" and shown["restart"]["run_id"] is None


async def test_a_finished_or_unknown_cycle_is_refused_and_nothing_is_queued(client, accounts, database, settings):
    cycle_id = await _stopped_cycle(database, settings)
    async with database.transaction() as session:
        await session.execute(update(Cycle).where(Cycle.id == cycle_id).values(finished_at=utcnow()))
    answer = await client.post(f"/api/v1/cycles/{cycle_id}/resume", headers=accounts.as_coordinator)
    assert answer.status_code == 409 and "finished" in answer.json()["detail"]
    wakes, actions = await _restarts(database, cycle_id)
    assert wakes == [] and "cycle.restart_asked" not in actions  # nothing queued, nothing audited
    assert (
        await client.post(f"/api/v1/cycles/{uuid.uuid4()}/resume", headers=accounts.as_coordinator)
    ).status_code == 404
    viewer = await client.post(f"/api/v1/cycles/{cycle_id}/resume", headers=accounts.as_viewer)
    assert viewer.status_code == 403


async def test_the_dashboard_button_queues_the_restart_and_the_list_shows_it_waiting(
    client, accounts, database, settings
):
    cycle_id = await _stopped_cycle(database, settings)
    login = await client.post("/login", data={"token": accounts.coordinator}, headers={"Origin": "http://kehoach.test"})
    assert login.status_code == 303
    pressed = await client.post(f"/cycles/{cycle_id}/resume", headers={"Origin": "http://kehoach.test"})
    assert pressed.status_code == 303 and "notice=resume_asked" in pressed.headers["location"]
    page = (await client.get(pressed.headers["location"])).text
    assert "Đã ghi nhận yêu cầu khởi động lại" in page
    assert "Đang chờ khởi động lại" in page  # the stopped cycle's line says a restart waits
    wakes, _actions = await _restarts(database, cycle_id)
    assert [(w.status, w.requested_by) for w in wakes] == [("queued", f"api:{accounts.coordinator_name}")]
