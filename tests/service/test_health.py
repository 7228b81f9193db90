"""For ops, on real parts: `/readyz` turns unhealthy when the database is stopped and healthy
again after (a PostgreSQL server of the test's own, stopped and started under the app), and
names what failed; `/metrics` shows the outbox depth rising while SMTP is down and falling
after, and the other figures alert rules need; `kehoach status` prints them."""

from __future__ import annotations

import re
import subprocess

import httpx
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import update

from approvals.config import Settings
from approvals.db import Database, utcnow
from notifications.models import MessageStatus, OutboxMessage
from service.app import create_app
from service.migrate import upgrade
from service.prefect_server import free_port
from tests.notifications.helpers import dispatcher, queue_many
from tests.support.pg import PrivatePostgres
from tests.support.smtp import RecordingSmtpServer
from tests.support.stack import KEHOACH


@pytest.fixture(scope="module")
def private_postgres():
    server = PrivatePostgres()
    server.create()
    upgrade(server.url)
    yield server
    server.destroy()


@pytest.fixture
async def web(private_postgres, link_secret, tmp_path, prefect_server):
    settings = Settings(
        database_url=private_postgres.url,
        link_secret=link_secret,
        data_dir=tmp_path,
        public_base_url="http://kehoach.test",
        event_cycle_deployment="",
        problem_cycle_deployment="",
    )
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kehoach.test") as c,
        ):
            yield c


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    assert match, f"{name} not in\n{text}"
    return float(match.group(1))


async def test_readyz_follows_the_database_down_and_back(web, private_postgres):
    ready = await web.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "outbox": "ok",
        "wakes": "ok",
        "prefect": "ok",
        "signing": "ok",  # development: test signers, made when first needed
    }
    private_postgres.stop()
    try:
        down = await web.get("/readyz")
        assert down.status_code == 503
        assert down.json()["checks"]["database"].startswith("cannot be read")
        assert (await web.get("/healthz")).status_code == 200  # the process itself lives
    finally:
        private_postgres.start()
    private_postgres.wait_until_accepting()
    again = await web.get("/readyz")
    assert again.status_code == 200, again.text


async def test_readyz_names_a_prefect_that_cannot_be_reached(web):
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        answer = await web.get("/readyz")
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert checks["database"] == "ok" and checks["prefect"].startswith("Prefect cannot be reached")


async def test_metrics_show_the_outbox_rising_while_smtp_is_down_and_falling_after(web, private_postgres):
    db = Database(private_postgres.url)
    try:
        before = _metric((await web.get("/metrics")).text, "kehoach_outbox_queued")
        await queue_many(db, [f"metrics-{n}" for n in range(12)])
        port = free_port()  # nothing listens there yet: SMTP is down
        down = dispatcher(db, port, base_seconds=60)
        await down.run_once()
        await down.aclose()
        page = await web.get("/metrics")
        assert page.headers["content-type"].startswith("text/plain")
        assert _metric(page.text, "kehoach_outbox_queued") == before + 12  # kept, not lost
        assert "# TYPE kehoach_decisions_total counter" in page.text
        assert "# TYPE kehoach_resumes_pending gauge" in page.text

        server = RecordingSmtpServer()
        server.port = port
        server.controller.port = port
        server.start()
        try:
            async with db.transaction() as session:  # their retry is due now (not waited for)
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.idempotency_key.like("metrics-%"))
                    .values(next_attempt_at=utcnow())
                )
            up = dispatcher(db, port)
            await up.run_once()
            await up.aclose()
        finally:
            server.stop()
        assert server.count(lambda r: True) == 12
        after = (await web.get("/metrics")).text
        assert _metric(after, "kehoach_outbox_queued") == before
    finally:
        async with db.transaction() as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.idempotency_key.like("metrics-%"))
                .values(status=MessageStatus.sent.value)
            )
        await db.dispose()


def test_kehoach_status_prints_what_runs_waits_and_fails(private_postgres, link_secret, tmp_path):
    env = {
        "KEHOACH_DATABASE_URL": private_postgres.url,
        "KEHOACH_LINK_SECRET": link_secret,
        "KEHOACH_DATA_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
    }
    shown = subprocess.run([KEHOACH, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 1, shown.stdout + shown.stderr  # Prefect cannot be reached: not ready
    for line in ("database", "migrations", "prefect", "outbox", "runs to resume", "cycles", "open steps"):
        assert line in shown.stdout, shown.stdout
    assert "Prefect cannot be reached" in shown.stdout


async def test_a_single_read_survives_a_database_restart(private_postgres):
    """`Database.read_once` (the failed-link limit's count, before every link request) takes its
    connection without the pool's ping: one the restart dropped is replaced, and the read
    answers, instead of every web process failing its next link request."""
    from sqlalchemy import literal, select

    db = Database(private_postgres.url)
    try:
        assert await db.read_once(select(literal(1))) == [(1,)]
        private_postgres.stop()  # the pooled connection is dropped with the server
        private_postgres.start()
        private_postgres.wait_until_accepting()
        assert await db.read_once(select(literal(2))) == [(2,)]
    finally:
        await db.dispose()
