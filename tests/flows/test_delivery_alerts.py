"""Coordinators hear of emails that could not be delivered, once per set of failures."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from approvals.config import PACKAGED_PLAN, Settings
from approvals.db import utcnow
from approvals.plan import load_plan
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.outbox import Recipient, enqueue, failed_messages
from notifications.render import RenderedEmail, Renderer
from tests.flows.test_sweep_time_travel import database  # noqa: F401  (a database of its own)

SETTINGS = Settings(link_secret="s" * 48)
PLAN = load_plan(PACKAGED_PLAN)


async def _fail(db, subject: str) -> None:
    key = f"test-failed:{uuid.uuid4()}"
    async with db.transaction() as session:
        await enqueue(
            session,
            idempotency_key=key,
            kind="approval_request",
            to=[Recipient("Hà Thị Thu", "giamdoc.stc@lang-son.example")],
            email=RenderedEmail(subject=subject, text="x", html="<p>x</p>"),
            domain="lang-son.example",
        )
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.idempotency_key == key)
            .values(status="failed", last_error="550 mailbox unavailable")
        )


async def _alerts(db) -> list[OutboxMessage]:
    async with db.sessions() as session:
        return list(
            (await session.execute(select(OutboxMessage).where(OutboxMessage.kind == "delivery_failure"))).scalars()
        )


async def _alert(db) -> int:
    async with db.transaction() as session:
        return await Emails.of(PLAN, SETTINGS, Renderer()).delivery_failures(
            session, await failed_messages(session), at=utcnow()
        )


async def test_a_failed_email_is_reported_to_the_coordinators_once(database):  # noqa: F811
    assert await _alert(database) == 0
    await _fail(database, "Thư thứ nhất")
    assert await _alert(database) == 1
    assert await _alert(database) == 0  # the same failures: no second alert
    (alert,) = await _alerts(database)
    assert alert.recipients[0]["email"] == "dieuphoi.skhcn@lang-son.example"  # the plan's coordinator (English)
    assert "giamdoc.stc@lang-son.example" in alert.text_body and "550" in alert.text_body
    await _fail(database, "Thư thứ hai")
    assert await _alert(database) == 1 and len(await _alerts(database)) == 2


async def test_coordinators_get_a_digest_when_a_cycle_starts(database):  # noqa: F811
    import datetime as dt

    from approvals.routing import steps
    from approvals.wording.messages import cycle_digest_messages
    from notifications.links import queue_plain_messages

    async with database.transaction() as session:
        cycle = await steps.get_or_create_cycle(session, kind="annual", period="2027", starts_on=dt.date(2027, 1, 15))
        messages = cycle_digest_messages(
            PLAN, cycle, {"dic_direction": "waiting"}, event="started", at=utcnow(), base_url="http://127.0.0.1:8765"
        )
        assert await queue_plain_messages(session, renderer=Renderer(), messages=messages, domain="x.example") == 1
        assert await queue_plain_messages(session, renderer=Renderer(), messages=messages, domain="x.example") == 0
    async with database.sessions() as session:
        (digest,) = (await session.execute(select(OutboxMessage).where(OutboxMessage.kind == "cycle_digest"))).scalars()
    assert digest.recipients[0]["email"] == "dieuphoi.skhcn@lang-son.example"
    assert (
        "2027" in digest.subject and "Annual implementation report" in digest.text_body
    )  # the coordinator reads English
