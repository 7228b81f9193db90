"""`/readyz` and `/metrics` in process (the fast tier; test_health.py stops a real PostgreSQL
under them): the checks name what is wrong (Prefect down, email stuck in the outbox) and the
metrics count what alert rules need."""

from __future__ import annotations

import datetime as dt
import re

from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import update

from approvals.db import utcnow
from notifications.models import OutboxMessage
from service.prefect_server import free_port
from tests.api.conftest import open_request
from tests.notifications.helpers import queue_many

NOWHERE = f"http://127.0.0.1:{free_port()}/api"


def _metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_readyz_names_prefect_down_and_email_stuck_in_the_outbox(client, database):
    with temporary_settings(updates={PREFECT_API_URL: NOWHERE}):
        answer = await client.get("/readyz")
        assert answer.status_code == 503 and answer.headers["cache-control"] == "no-store"
        checks = answer.json()["checks"]
        assert (checks["database"], checks["migrations"], checks["outbox"]) == ("ok", "ok", "ok")
        assert checks["prefect"].startswith("Prefect cannot be reached")

        (key,) = await queue_many(database, [f"stuck-{utcnow().timestamp()}"])
        async with database.transaction() as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.message_id == key)
                .values(next_attempt_at=utcnow() - dt.timedelta(minutes=11))
            )
        checks = (await client.get("/readyz")).json()["checks"]
    assert re.fullmatch(r"[0-9]+ email\(s\) due, the oldest since .* UTC", checks["outbox"]), checks["outbox"]
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_metrics_count_the_outbox_and_the_overdue_steps(client, database, settings):
    before = (await client.get("/metrics")).text
    await queue_many(database, [f"metric-{utcnow().timestamp()}-{n}" for n in range(3)])
    await open_request(database, settings, days_late=2)  # a PPC resolution, two days past due
    after = await client.get("/metrics")
    assert after.status_code == 200 and after.headers["content-type"].startswith("text/plain")
    assert _metric(after.text, "kehoach_outbox_queued") == _metric(before, "kehoach_outbox_queued") + 3
    overdue = ("kehoach_requests_overdue", '{cycle="problem_escalation",stage="ppc_resolution"}')
    assert _metric(after.text, *overdue) == _metric(before, *overdue) + 1, after.text
