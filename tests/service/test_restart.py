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
from prefect.states import Failed
from sqlalchemy import select

from approvals import cycles
from approvals.config import Settings
from approvals.db import utcnow
from approvals.models import AuditEvent, Cycle
from approvals.requests import get_or_create_cycle
from service.cycles import PrefectUnavailable, restart_cycle


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
        assert await cycles.needs_attention(session, cycle.id, reason=cycles.Attention.run_failed, detail="boom",
                                            run_id=str(run.id), now=utcnow())
    return cycle.id, year


async def _restarted(database, cycle_id) -> tuple[Cycle, list[str]]:
    async with database.sessions() as session:
        cycle = await session.get(Cycle, cycle_id)
        actions = list((await session.execute(select(AuditEvent.action).where(
            AuditEvent.entity_id == str(cycle_id)).order_by(AuditEvent.id))).scalars())
    return cycle, actions


async def test_a_restart_prefect_cannot_start_changes_nothing_and_the_next_try_starts_one_run(
        database, sandbox, prefect_api, tmp_path):
    name = f"r{uuid.uuid4().hex[:10]}"
    settings = Settings(database_url=sandbox.url, link_secret="r" * 48, data_dir=tmp_path,
                        prefect_deployment=f"{_cycle_run.name}/{name}")
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
