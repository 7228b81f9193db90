"""Restarting a cycle whose run failed, against a real Prefect server: when Prefect cannot start
the new run (here its deployment never appears: no worker serves it), nothing changes: the
cycle still needs attention, its restart count and parked wakes stay, and no restart is audited,
so it never looks carried while nothing carries it. Trying again once the deployment is there
starts one run and releases the cycle."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Failed, Running
from sqlalchemy import select, update

from approvals.config import Settings
from approvals.db import utcnow
from approvals.models import AuditEvent, Cycle, Wake
from approvals.routing.stages import RESTART
from approvals.routing.steps import get_or_create_cycle
from approvals.running import cycles
from service.cycles import PrefectUnavailable, restart_cycle
from service.resume import Resumer


@flow(name="restart-test-cycle")
def _cycle_run(year: int = 0) -> None:  # never run: only its runs and its deployment are used
    pass


@pytest.fixture
def prefect_api(prefect_server):
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        yield prefect_server.api_url


async def _failed_cycle(database) -> tuple[uuid.UUID, int]:
    """An annual cycle whose run failed, marked as needing attention."""
    async with get_client() as client:
        run = await client.create_flow_run(_cycle_run, parameters={})
        await client.set_flow_run_state(run.id, Failed(message="boom"), force=True)
    year = 3000 + uuid.uuid4().int % 6000
    async with database.transaction() as session:
        cycle = await get_or_create_cycle(session, kind="annual", period=str(year), starts_on=dt.date(year, 1, 15))
        cycle.run_id = str(run.id)
        await session.flush()
        assert await cycles.needs_attention(
            session, cycle.id, reason=cycles.Attention.run_failed, detail="boom", run_id=str(run.id), now=utcnow()
        )
    return cycle.id, year


async def _restarted(database, cycle_id) -> tuple[Cycle, list[str]]:
    async with database.sessions() as session:
        cycle = await session.get(Cycle, cycle_id)
        actions = list(
            (
                await session.execute(
                    select(AuditEvent.action).where(AuditEvent.entity_id == str(cycle_id)).order_by(AuditEvent.id)
                )
            ).scalars()
        )
    return cycle, actions


async def test_a_restart_prefect_cannot_start_changes_nothing_and_the_next_try_starts_one_run(
    database, sandbox, prefect_api, tmp_path
):
    name = f"r{uuid.uuid4().hex[:10]}"
    settings = Settings(
        database_url=sandbox.url,
        link_secret="r" * 48,
        data_dir=tmp_path,
        prefect_deployment=f"{_cycle_run.name}/{name}",
    )
    cycle_id, year = await _failed_cycle(database)

    with pytest.raises(PrefectUnavailable, match="did not appear"):
        await restart_cycle(database, settings, cycle_id, by="api:coordinator", deployment_wait=1)
    cycle, actions = await _restarted(database, cycle_id)
    assert (cycle.attention, cycle.restarts) == ("run_failed", 0)
    assert "cycle.restarted" not in actions

    # The worker comes up and serves the deployment: the same action starts one run.
    deployment_id = await (await _cycle_run.to_deployment(name=name)).apply()
    try:
        run, previous, restart = await restart_cycle(database, settings, cycle_id, by="api:coordinator")
    finally:
        async with get_client() as client:
            await client.delete_deployment(deployment_id)
    cycle, actions = await _restarted(database, cycle_id)
    assert (cycle.attention, cycle.restarts, restart) == (None, 1, 1)
    assert actions.count("cycle.restarted") == 1 and previous == cycle.run_id
    assert run.idempotency_key == f"annual-cycle-{year}-restart-1" and run.parameters == {"year": year}


# A restart asked by a coordinator (the API and the dashboard queue it) is delivered by the
# service: the resumer works on every due wake, so these use a database of their own.


async def _restart_wake(database, cycle_id) -> Wake:
    async with database.sessions() as session:
        return (
            await session.execute(select(Wake).where(Wake.cycle_id == cycle_id, Wake.stage == RESTART))
        ).scalar_one()


async def _make_due(database, cycle_id) -> None:
    """The back-off's wait, skipped (the next attempt is due now)."""
    async with database.transaction() as session:
        await session.execute(
            update(Wake).where(Wake.cycle_id == cycle_id, Wake.stage == RESTART).values(next_attempt_at=utcnow())
        )


def _settings(database, tmp_path, deployment: str) -> Settings:
    return Settings(
        database_url=database.url,
        link_secret="r" * 48,
        data_dir=tmp_path,
        prefect_deployment=deployment,
        resume_timeout=1.0,
    )


async def test_a_queued_restart_waits_for_prefect_then_starts_one_run(private_database, prefect_api, tmp_path):
    database, name = private_database, f"q{uuid.uuid4().hex[:10]}"
    settings = _settings(database, tmp_path, f"{_cycle_run.name}/{name}")
    cycle_id, year = await _failed_cycle(database)
    async with database.transaction() as session:
        await cycles.ask_restart(session, cycle_id, by="api:lan.vt", force=False, now=utcnow())
    resumer = Resumer(database, settings=settings)

    # No worker serves the deployment yet: nothing starts, the restart waits with Prefect's answer.
    assert await resumer.deliver_once() == 0
    wake = await _restart_wake(database, cycle_id)
    assert (wake.status, wake.attempts) == ("queued", 1) and "did not appear" in wake.last_error
    cycle, actions = await _restarted(database, cycle_id)
    assert (cycle.attention, cycle.restarts) == ("run_failed", 0) and "cycle.restarted" not in actions

    deployment_id = await (await _cycle_run.to_deployment(name=name)).apply()
    try:
        await _make_due(database, cycle_id)
        assert await resumer.deliver_once() == 1
        # The same ask delivered again (a delivery that died before it recorded the outcome): nothing more.
        async with database.transaction() as session:
            await session.execute(
                update(Wake)
                .where(Wake.id == wake.id)
                .values(status="queued", lease_until=None, next_attempt_at=utcnow())
            )
        assert await resumer.deliver_once() == 1
        wake = await _restart_wake(database, cycle_id)
        async with get_client() as client:  # (deleting the deployment deletes its runs)
            run = await client.read_flow_run(uuid.UUID(wake.run_id))  # the run the restart started
            runs = await client.read_flow_runs(limit=200)
    finally:
        async with get_client() as client:
            await client.delete_deployment(deployment_id)
    cycle, actions = await _restarted(database, cycle_id)
    assert wake.status == "done" and wake.last_error == "the cycle was restarted"
    assert (cycle.attention, cycle.restarts) == (None, 1) and actions.count("cycle.restarted") == 1
    async with database.sessions() as session:
        actor = (
            await session.execute(
                select(AuditEvent.actor).where(
                    AuditEvent.entity_id == str(cycle_id), AuditEvent.action == "cycle.restarted"
                )
            )
        ).scalar_one()
    assert actor == "api:lan.vt"
    assert run.idempotency_key == f"annual-cycle-{year}-restart-1" and run.parameters == {"year": year}
    assert sum(r.idempotency_key == f"annual-cycle-{year}-restart-1" for r in runs) == 1


async def test_a_restart_of_a_run_that_is_alive_is_parked_with_why_unless_forced(
    private_database, prefect_api, tmp_path
):
    database, name = private_database, f"a{uuid.uuid4().hex[:10]}"
    settings = _settings(database, tmp_path, f"{_cycle_run.name}/{name}")
    async with get_client() as client:
        alive = await client.create_flow_run(_cycle_run, parameters={})
        await client.set_flow_run_state(alive.id, Running(), force=True)
    year = 3000 + uuid.uuid4().int % 6000
    async with database.transaction() as session:
        cycle = await get_or_create_cycle(session, kind="annual", period=str(year), starts_on=dt.date(year, 1, 15))
        cycle.run_id, cycle_id = str(alive.id), cycle.id
        await session.flush()
        await cycles.ask_restart(session, cycle_id, by="api:lan.vt", force=False, now=utcnow())
    resumer = Resumer(database, settings=settings)
    assert await resumer.deliver_once() == 1
    wake = await _restart_wake(database, cycle_id)
    assert wake.status == "parked" and "alive" in wake.last_error
    async with get_client() as client:
        assert (await client.read_flow_run(alive.id)).state.type.value == "RUNNING"  # left alone

    # Forced, the live run is cancelled first and a new one carries the cycle.
    async with database.transaction() as session:
        await cycles.ask_restart(session, cycle_id, by="api:lan.vt", force=True, now=utcnow())
    deployment_id = await (await _cycle_run.to_deployment(name=name)).apply()
    try:
        assert await resumer.deliver_once() == 1
    finally:
        async with get_client() as client:
            await client.delete_deployment(deployment_id)
    async with database.sessions() as session:
        forced = (
            await session.execute(
                select(Wake).where(Wake.cycle_id == cycle_id, Wake.stage == RESTART).order_by(Wake.id.desc()).limit(1)
            )
        ).scalar_one()
    assert (forced.status, forced.reason) == ("done", "restart_forced") and forced.run_id
    async with get_client() as client:
        assert (await client.read_flow_run(alive.id)).state.type.value == "CANCELLED"
