"""When a step is decided its deadline leaves the calendars it was put in: the decider's receipt
and a note to every approver the outcome spared each carry a CANCEL of their own event (the
UID of the request email's invite, a higher SEQUENCE)."""

from __future__ import annotations

import base64

from icalendar import Calendar
from sqlalchemy import select

from approvals.models import Assignment
from notifications.invites import event_uid
from notifications.models import OutboxMessage
from tests.api.conftest import escalate, live_token, open_request


def _ics(message: OutboxMessage):
    (attachment,) = message.attachments
    assert attachment["filename"] == "cancel.ics"
    calendar = Calendar.from_ical(base64.b64decode(attachment["data"]))
    (event,) = calendar.walk("VEVENT")
    return calendar, event


async def test_a_decision_cancels_the_deadline_for_the_decider_and_the_others(client, database, settings, accounts):
    # PPC resolution, escalated: the vice-chair, and now her superior the chair, are asked; either decides.
    opened = await escalate(client, accounts, database, await open_request(database, settings))
    assert set(opened.assignments) == {"ppc_vice_chair", "ppc_chair"}
    token = await live_token(database, settings, opened.assignments["ppc_vice_chair"])
    answer = await client.post(f"/a/{token}", data={"outcome": "approve", "comment": "Đồng ý xử lý."})
    assert answer.status_code == 200

    async with database.sessions() as session:
        statuses = dict(
            (
                await session.execute(
                    select(Assignment.official_id, Assignment.status).where(Assignment.request_id == opened.request_id)
                )
            ).all()
        )
        rows = list((await session.execute(select(OutboxMessage))).scalars())
    assert statuses == {"ppc_vice_chair": "decided", "ppc_chair": "closed"}
    domain = settings.mail_domain

    receipt = next(
        m
        for m in rows
        if m.kind == "receipt"
        and m.recipients[0]["email"] == "phochutich@lang-son.example"
        and "Đồng ý xử lý." in m.text_body
    )
    calendar, event = _ics(receipt)
    assert str(calendar["method"]) == "CANCEL" and str(event["status"]) == "CANCELLED"
    assert str(event["uid"]) == event_uid(opened.request_id, "ppc_vice_chair", domain)

    (closed,) = [m for m in rows if m.kind == "step_closed" and str(opened.request_id) in m.idempotency_key]
    assert closed.recipients[0]["email"] == "chutich@lang-son.example"
    assert closed.subject.startswith("[Đã xong]") and "không cần thao tác thêm" in closed.text_body
    assert "Dương Xuân Huyên" in closed.text_body  # who decided
    calendar, event = _ics(closed)
    assert str(calendar["method"]) == "CANCEL"
    assert str(event["uid"]) == event_uid(opened.request_id, "ppc_chair", domain)


async def test_cancelling_a_cycle_takes_the_deadline_off_every_waiting_approver(client, database, settings, accounts):
    opened = await escalate(client, accounts, database, await open_request(database, settings))  # two approvers wait
    answer = await client.post(
        f"/api/v1/cycles/{opened.cycle_id}/cancel", json={"reason": "Trùng kế hoạch"}, headers=accounts.as_coordinator
    )
    assert answer.status_code == 200, answer.text
    async with database.sessions() as session:
        rows = list(
            (
                await session.execute(
                    select(OutboxMessage).where(
                        OutboxMessage.kind == "step_closed",
                        OutboxMessage.idempotency_key.contains(str(opened.request_id)),
                    )
                )
            ).scalars()
        )
    assert sorted(m.recipients[0]["email"] for m in rows) == ["chutich@lang-son.example", "phochutich@lang-son.example"]
    domain = settings.mail_domain
    for message, official in zip(
        sorted(rows, key=lambda m: m.recipients[0]["email"]), ["ppc_chair", "ppc_vice_chair"], strict=True
    ):
        calendar, event = _ics(message)
        assert str(calendar["method"]) == "CANCEL"
        assert str(event["uid"]) == event_uid(opened.request_id, official, domain)
        assert "Hết hạn" in message.text_body
