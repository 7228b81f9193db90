"""The web service never lets the Prefect client start a temporary server of its own: with no
PREFECT_API_URL a wake is not delivered now, it stays queued, and the reconciler delivers it
once Prefect is configured."""

from __future__ import annotations

import uuid

from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import select, update

from approvals.db import utcnow
from approvals.models import Cycle, Wake
from approvals.routing.stages import WakeReason, enqueue_wake
from service.resume import Resumer
from tests.api.conftest import open_request


async def test_a_wake_without_a_prefect_api_stays_queued_and_starts_no_server(private_database, settings):
    database = private_database  # the resumer claims any due wake: only this test's may be there
    opened = await open_request(database, settings, cycle_kind="annual", stage_id="dic_direction")
    async with database.transaction() as session:
        await session.execute(update(Cycle).where(Cycle.id == opened.cycle_id).values(run_id=str(uuid.uuid4())))
        await enqueue_wake(
            session, cycle_id=opened.cycle_id, stage="dic_direction", reason=WakeReason.stage_settled, now=utcnow()
        )
    servers_before = {port: server.running for port, server in SubprocessASGIServer._instances.items()}

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert not PREFECT_API_URL.value()
        assert await Resumer(database, settings=settings).deliver_once() == 0

    assert {port: server.running for port, server in SubprocessASGIServer._instances.items()} == servers_before
    async with database.sessions() as session:
        (wake,) = (await session.execute(select(Wake).where(Wake.cycle_id == opened.cycle_id))).scalars()
    assert (wake.status, wake.attempts, wake.lease_until) == ("queued", 1, None)  # kept for the next round
    assert "PREFECT_API_URL is not set" in wake.last_error and wake.next_attempt_at > utcnow()
