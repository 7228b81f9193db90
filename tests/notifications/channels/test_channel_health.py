"""What ops see of the channels (notifications/channel_health.py): `/metrics` counts each
channel's messages by state and flags a failing channel; `kehoach status` names it and exits 1.
A channel whose provider refuses every message (Zalo's template withdrawn) is failing; the
channel the messages fell back to, sending them, is not."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from types import SimpleNamespace

from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import select
from typer.testing import CliRunner

from approvals.config import PACKAGED_PLAN, Settings, get_settings
from approvals.db import utcnow
from approvals.plan import load_plan
from approvals.wording.channel_alerts import ChannelAlert
from notifications.channels.alerts import coordinators_told_of_failing
from notifications.channels.base import VIETNAM
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.render import Renderer
from service.cli import app
from service.health import exposition, read_facts
from tests.notifications.channels.conftest import TEMPLATES
from tests.notifications.channels.test_channel_outbox import asking, channel_dispatcher, queue
from tests.notifications.channels.test_delivery_reports import PHONE, WINDOW

COORDINATED = load_plan(PACKAGED_PLAN)  # the shipped plan's coordinators hear of a failing channel


def _metric(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name + labels)} ([0-9.e+-]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def status(database_url: str, data_dir: str, *args: str) -> tuple[int, str]:
    """`kehoach status ARGS...` in this process, on the test's own database."""
    env = {"KEHOACH_DATABASE_URL": database_url, "KEHOACH_DATA_DIR": data_dir, "COLUMNS": "200", "PREFECT_API_URL": ""}
    get_settings.cache_clear()
    try:
        with temporary_settings(updates={PREFECT_API_URL: None}):
            result = CliRunner().invoke(app, ["status", *args], env=env)
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


async def test_a_channel_refusing_every_message_is_failing_and_named(private_database, channels, fake_zalo, tmp_path):
    dispatch = channel_dispatcher(private_database, channels)
    await queue(private_database, asking())
    await dispatch.run_once()
    facts = await read_facts(SimpleNamespace(db=private_database), utcnow())
    assert facts.channels.messages == {("zalo", "sent"): 1} and facts.channels.failing == []

    fake_zalo.refuse_template(TEMPLATES["approval_request"])
    await queue(private_database, *(asking() for _ in range(3)))
    await dispatch.run_once()  # zalo refuses the three; they fall back to SMS
    await dispatch.run_once()  # SMS sends them
    facts = await read_facts(SimpleNamespace(db=private_database), utcnow())
    text = exposition(facts, utcnow())
    assert _metric(text, "kehoach_channel_messages", '{channel="zalo",status="failed"}') == 3
    assert _metric(text, "kehoach_channel_messages", '{channel="sms",status="sent"}') == 3
    # zalo sent one earlier this hour: not failing yet (one official's refusal is not an outage)
    assert facts.channels.failing == []

    await queue(private_database, *(asking() for _ in range(3)))
    await dispatch.run_once()
    facts = await read_facts(SimpleNamespace(db=private_database), utcnow())
    assert facts.channels.failing == [], "a sent message within the hour keeps the channel from failing"


async def test_status_names_the_failing_channel(private_database, channels, fake_zalo, tmp_path):
    fake_zalo.refuse_template(TEMPLATES["approval_request"])
    await queue(private_database, *(asking() for _ in range(3)))
    await channel_dispatcher(private_database, channels).run_once()  # refused: each falls back to SMS, queued
    facts = await read_facts(SimpleNamespace(db=private_database), utcnow())
    assert _metric(exposition(facts, utcnow()), "kehoach_channel_failing", '{channel="zalo"}') == 1
    assert [(f.channel, f.failures, f.error_code) for f in facts.channels.failing] == [("zalo", 3, "-131")]
    code, out = await asyncio.to_thread(status, private_database.url, str(tmp_path), "--check", "channels")
    assert code == 1, out
    assert "!! channels" in out and "zalo: 3 failure(s) and no message sent in the last 60 min; latest -131" in out
    assert "zalo             0 sent (0 delivered, 0 not in time), 0 queued, 3 failed" in out
    assert "sms              0 sent (0 delivered, 0 not in time), 3 queued" in out


async def test_what_the_providers_reported_is_counted(private_database, channels, fake_zalo, fake_esms, tmp_path):
    """One Zalo message reaches the phone, one never does (no report in the window): /metrics,
    `kehoach status` say so (the dashboard: tests/api/test_dashboard.py), and the second went on by SMS."""
    dispatch = channel_dispatcher(private_database, channels, reports=WINDOW)
    await queue(private_database, asking())
    await dispatch.run_once()
    await dispatch.reports.check_once(now=utcnow() + WINDOW.every)  # reached the phone
    fake_zalo.unreached.add(PHONE)
    await queue(private_database, asking())
    await dispatch.run_once()
    await dispatch.reports.check_once(now=utcnow() + WINDOW.within)  # never reported: on to SMS
    facts = await read_facts(SimpleNamespace(db=private_database), utcnow())
    text = exposition(facts, utcnow())
    assert _metric(text, "kehoach_channel_deliveries", '{channel="zalo",delivery="delivered"}') == 1
    assert _metric(text, "kehoach_channel_deliveries", '{channel="zalo",delivery="unconfirmed"}') == 1
    assert facts.channels.messages[("sms", "queued")] == 1
    _, out = await asyncio.to_thread(status, private_database.url, str(tmp_path), "--check", "channels")
    assert "zalo             2 sent (1 delivered, 1 not in time), 0 queued, 0 failed" in out, out


async def test_a_failing_channel_tells_the_coordinators_once_a_day(private_database, channels, fake_zalo):
    """Zalo refuses every message (its template withdrawn): once the channel is failing, each
    coordinator of the day gets one email; more refusals, seen by another dispatcher, tell nobody again."""
    emails = Emails.of(COORDINATED, Settings(link_secret="c" * 48), Renderer())
    told = coordinators_told_of_failing(private_database, emails)
    dispatch = channel_dispatcher(private_database, channels, on_failing=told)
    fake_zalo.refuse_template(TEMPLATES["approval_request"])
    await queue(private_database, asking(), asking())
    await dispatch.run_once()
    assert await _alerts(private_database) == []  # two refusals: not failing yet
    await queue(private_database, asking())
    await dispatch.run_once()
    alerts = await _alerts(private_database)
    now = utcnow()
    day = now.astimezone(VIETNAM).date()
    coordinators = {str(p.email) for p in COORDINATED.holders("lead_agency.coordinator", day)}
    assert coordinators and {r["email"] for m in alerts for r in m.recipients} == coordinators
    assert len(alerts) == len(coordinators)
    assert all("Zalo" in m.subject and "zalo: 3 failure(s)" in m.text_body for m in alerts), alerts[0].text_body
    assert "-131" in alerts[0].text_body
    await queue(private_database, asking(), asking())
    await channel_dispatcher(private_database, channels, on_failing=told).run_once()
    assert len(await _alerts(private_database)) == len(coordinators)  # once a day
    tomorrow = ChannelAlert.channel_failing(COORDINATED, channel="zalo", detail="", at=now + dt.timedelta(days=1))
    assert tomorrow.subject != ChannelAlert.channel_failing(COORDINATED, channel="zalo", detail="", at=now).subject


async def _alerts(database) -> list[OutboxMessage]:
    async with database.reads() as session:
        found = await session.execute(
            select(OutboxMessage).where(OutboxMessage.idempotency_key.like("attention:channel_failing:%"))
        )
        return list(found.scalars())
