"""The web service never lets the Prefect client start a temporary server of its own: with no
PREFECT_API_URL a decided step's run is not resumed now, the outcome is kept, and the
reconciler resumes it once Prefect is configured."""

from __future__ import annotations

import logging
import uuid

from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL, temporary_settings

from approvals import requests
from approvals.models import ApprovalRequest
from service.resume import Resumer
from tests.api.conftest import open_request


async def test_a_resume_without_a_prefect_api_keeps_the_outcome_and_starts_no_server(database, settings, caplog):
    opened = await open_request(database, settings, cycle_kind="annual", stage_id="dic_direction")
    async with database.transaction() as session:
        request = await session.get(ApprovalRequest, opened.request_id)
        request.waiter_ref = str(uuid.uuid4())
        request.status = "approved"
    servers_before = {port: server.running for port, server in SubprocessASGIServer._instances.items()}

    with temporary_settings(restore_defaults={PREFECT_API_URL}), caplog.at_level(logging.WARNING, "kehoach.resume"):
        assert not PREFECT_API_URL.value()
        assert await Resumer(database).resume(request) is False

    assert "PREFECT_API_URL is not set" in caplog.text
    assert {port: server.running for port, server in SubprocessASGIServer._instances.items()} == servers_before
    async with database.sessions() as session:
        waiting = {r.id for r in await requests.requests_awaiting_resume(session, limit=1000)}
    assert opened.request_id in waiting  # kept for the reconciler
