"""A request from opening through two reminders, an escalation and its timeout, with
the clock moved by time-machine; the emails queued at each point are checked."""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import icalendar
import pytest
import time_machine
from sqlalchemy import select

from approvals.config import Settings
from approvals.db import utcnow
from approvals.models import ApprovalRequest, Assignment, AuditEvent, Decision
from approvals.routing import link_views, steps
from approvals.tokens import derive_token
from flows.sweep import sweep_with_emails
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.render import Renderer
from tests.approvals.test_routing import PLAN

SECRET = "s" * 48
SETTINGS = Settings(link_secret=SECRET)
TZ = PLAN.tz


def at(day: int, hour: int) -> dt.datetime:
    """A local time in July 2026 (Asia/Ho_Chi_Minh)."""
    return dt.datetime(2026, 7, day, hour, 0, tzinfo=TZ)


async def _queued(db, request_id) -> list[tuple[str, str]]:
    """(kind, recipient) of every email about this request, in order."""
    async with db.sessions() as session:
        ids = {
            str(a)
            for a in (await session.execute(select(Assignment.id).where(Assignment.request_id == request_id))).scalars()
        }
        rows = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.created_at))).scalars()
        return [(m.kind, m.recipients[0]["email"]) for m in rows if m.idempotency_key.split(":")[1] in ids]


async def _sweep(db):
    return [e.kind.value for e in await sweep_with_emails(db, plan=PLAN, settings=SETTINGS, renderer=Renderer())]


@pytest.fixture
def database(private_database):
    """A database of its own: the sweep looks at every open request."""
    return private_database


async def test_two_reminders_then_escalation_then_timeout(database):
    renderer = Renderer()
    with time_machine.travel(at(2, 9), tick=False):
        async with database.transaction() as session:
            cycle = await steps.get_or_create_cycle(
                session, kind="test", period=f"tt-{uuid.uuid4().hex[:10]}", starts_on=dt.date(2026, 7, 1)
            )
            opened = await steps.open_request(
                session,
                plan=PLAN,
                secret=SETTINGS.link_secret_bytes(),
                cycle=cycle,
                stage_id="s_timeout",
                waiter_ref=None,
                link_ttl=dt.timedelta(days=60),
                now=utcnow(),
                requested_by="clerk1",
            )
            await Emails.of(PLAN, SETTINGS, renderer).approval_links(
                session, opened.request, opened.cycle, opened.new_assignments
            )
        request_id = opened.request.id
        first = opened.new_assignments[0].assignment
        first_token = derive_token(SETTINGS.link_secret_bytes(), first.id, first.token_generation)
        # head1 is on leave (delegation 1-14 July): her deputy is asked, on her behalf.
        assert (first.official_id, first.on_behalf_of) == ("deputy1", "head1")
        assert opened.request.due_at == dt.datetime(2026, 7, 15, 23, 59, 59, 999999, tzinfo=TZ)
        assert await _queued(database, request_id) == [("approval_request", "deputy1@t.example")]
        assert await _sweep(database) == []

    with time_machine.travel(at(9, 1), tick=False):  # after due - 7 days (end of 8 July)
        assert await _sweep(database) == ["reminder"]
        assert await _sweep(database) == []  # once only
        assert (await _queued(database, request_id))[-1] == ("reminder", "deputy1@t.example")
        async with database.sessions() as session:  # the reminder's link replaces the first one
            try:
                await link_views.view_link(session, first_token, now=utcnow())
                raise AssertionError("the first link still works after a reminder")
            except steps.InvalidLink:
                pass

    with time_machine.travel(at(14, 1), tick=False):  # after due - 2 days
        assert await _sweep(database) == ["reminder"]
        assert len(await _queued(database, request_id)) == 3

    with time_machine.travel(at(16, 0) + dt.timedelta(minutes=5), tick=False):  # past the due time
        assert await _sweep(database) == ["escalation"]
        assert (await _queued(database, request_id))[-1] == ("escalation", "chair@t.example")
        async with database.sessions() as session:
            request = await session.get(ApprovalRequest, request_id)
        assert request.status == "pending" and request.escalated_at is not None
        assert await _sweep(database) == []

    with time_machine.travel(at(19, 1), tick=False):  # escalation grace (3 days) over: expired, never approved
        assert await _sweep(database) == ["expired"]
        async with database.sessions() as session:
            request = await session.get(ApprovalRequest, request_id)
            decisions = (await session.execute(select(Decision).where(Decision.request_id == request_id))).all()
            actions = list(
                (
                    await session.execute(
                        select(AuditEvent.action).where(AuditEvent.entity_id == str(request_id)).order_by(AuditEvent.id)
                    )
                ).scalars()
            )
        assert request.status == "expired" and decisions == []
        assert actions == [
            "request.opened",
            "request.reminded",
            "request.reminded",
            "request.escalated",
            "request.expired",
        ]
        assert [kind for kind, _ in await _queued(database, request_id)] == [
            "approval_request",
            "reminder",
            "reminder",
            "escalation",
        ]
        async with database.sessions() as session:  # the submitter is told it expired
            told = (
                await session.execute(
                    select(OutboxMessage).where(OutboxMessage.idempotency_key == f"outcome:{request_id}")
                )
            ).scalar_one()
        assert told.recipients[0]["email"] == "clerk1@t.example" and "Hết hạn" in told.subject

    # Each email carries the deadline as a calendar event: the reminders update the first
    # one (same UID, higher SEQUENCE), in Asia/Ho_Chi_Minh time.
    events = await _invites(database, request_id)
    deputy = [e for e in events if "deputy1@t.example" in str(e.get("attendee"))]
    assert len(deputy) == 3 and len({str(e["uid"]) for e in deputy}) == 1
    assert [int(e["sequence"]) for e in deputy] == sorted(int(e["sequence"]) for e in deputy)
    assert len({int(e["sequence"]) for e in deputy}) == 3
    assert deputy[0].decoded("dtend").astimezone(TZ) == dt.datetime(2026, 7, 15, 23, 59, 59, tzinfo=TZ)
    chair = [e for e in events if "chair@t.example" in str(e.get("attendee"))]
    assert len(chair) == 1 and str(chair[0]["uid"]) != str(deputy[0]["uid"])


async def _invites(db, request_id):
    """The VEVENTs of the .ics attached to this request's emails, in order."""
    async with db.sessions() as session:
        ids = {
            str(a)
            for a in (await session.execute(select(Assignment.id).where(Assignment.request_id == request_id))).scalars()
        }
        rows = list((await session.execute(select(OutboxMessage).order_by(OutboxMessage.created_at))).scalars())
    events = []
    for row in rows:
        if row.idempotency_key.split(":")[1] not in ids:
            continue
        for attachment in row.attachments or []:
            events += icalendar.Calendar.from_ical(base64.b64decode(attachment["data"])).walk("VEVENT")
    return events


async def test_a_unit_that_has_not_submitted_is_reminded_with_fresh_links_then_escalated(database):
    """The budget step waits for the DoF's submission: reminders 14 and 3 days before the due
    time each carry a fresh form link, and the one before stops working (security.md: a
    reminder issues a fresh token and revokes the old one); at the due time the step is
    overdue, the stage's superior is told which unit has not submitted, the step stays open
    and the last link works."""
    from approvals.plan import load_plan
    from approvals.routing.submissions import SUBMISSION_LINK, open_submission
    from approvals.routing.submitting import view_submission
    from notifications.composing import placeholder

    plan = load_plan(SETTINGS.plan_file)

    async def sweep_lang_son():
        return [
            e.kind.value for e in await sweep_with_emails(database, plan=plan, settings=SETTINGS, renderer=Renderer())
        ]

    async def emails() -> list[OutboxMessage]:
        async with database.sessions() as session:
            return list(
                (
                    await session.execute(
                        select(OutboxMessage)
                        .where(OutboxMessage.idempotency_key.startswith(f"submission_request:{link.id}"))
                        .order_by(OutboxMessage.created_at)
                    )
                ).scalars()
            )

    with time_machine.travel(at(2, 9), tick=False):
        async with database.transaction() as session:
            cycle = await steps.get_or_create_cycle(
                session, kind="annual", period=f"tt-{uuid.uuid4().hex[:10]}", starts_on=dt.date(2026, 7, 1)
            )
            opened = await open_submission(
                session,
                plan=plan,
                secret=SETTINGS.link_secret_bytes(),
                cycle=cycle,
                stage_id="finance_allocation",
                subject="",
                waiter_ref=None,
                now=utcnow(),
                link_ttl=dt.timedelta(days=30),
            )
            await Emails.of(plan, SETTINGS, Renderer()).submission_link(
                session, opened.opened.request, cycle, opened.asked
            )
        request_id, link = opened.opened.request.id, opened.asked.link
        token = derive_token(SETTINGS.link_secret_bytes(), link.id, 1)
        # Due 90 days after 1 July, at the end of 29 September; reminders 14 and 3 days before.
        assert opened.opened.request.due_at == dt.datetime(2026, 9, 29, 23, 59, 59, 999999, tzinfo=TZ)
        assert await sweep_lang_son() == []

    with time_machine.travel(dt.datetime(2026, 9, 16, 9, 0, tzinfo=TZ), tick=False):
        assert await sweep_lang_son() == ["reminder"]
        assert await sweep_lang_son() == []  # once only
    with time_machine.travel(dt.datetime(2026, 9, 27, 9, 0, tzinfo=TZ), tick=False):
        assert await sweep_lang_son() == ["reminder"]
    sent = await emails()
    assert [m.recipients[0]["email"] for m in sent] == ["ngansach.stc@lang-son.example"] * 3
    for generation, message in enumerate(sent, start=1):  # the first email, then each reminder's fresh link
        assert placeholder(SUBMISSION_LINK, f"{link.id}:{generation}") in message.text_body
        assert placeholder(SUBMISSION_LINK, f"{link.id}:{generation}") in message.html_body
    async with database.sessions() as session:
        for old in (1, 2):
            with pytest.raises(steps.InvalidLink):
                await view_submission(session, derive_token(SETTINGS.link_secret_bytes(), link.id, old), now=utcnow())
    token = derive_token(SETTINGS.link_secret_bytes(), link.id, 3)

    with time_machine.travel(dt.datetime(2026, 9, 30, 9, 0, tzinfo=TZ), tick=False):
        assert await sweep_lang_son() == ["overdue"]
        assert await sweep_lang_son() == []
        async with database.sessions() as session:
            request = await session.get(ApprovalRequest, request_id)
            assert request.status == "awaiting_submission" and request.escalated_at is not None
            view = await view_submission(session, token, now=utcnow())  # the unit can still submit, with the last link
            assert view.request.id == request_id
            actions = list(
                (
                    await session.execute(
                        select(AuditEvent.action).where(AuditEvent.entity_id == str(request_id)).order_by(AuditEvent.id)
                    )
                ).scalars()
            )
    assert actions == [
        "request.opened",
        "submission.asked",
        "submission.reminded",
        "submission.reminded",
        "request.overdue",
        "submission.missing",
    ]
    # The stage's superior (finance_allocation escalates to the PPC chair) is told, once,
    # which unit has not submitted and who was asked; nobody gets a link to decide for it.
    async with database.sessions() as session:
        told = list(
            (
                await session.execute(
                    select(OutboxMessage).where(
                        OutboxMessage.idempotency_key.startswith(f"submission_overdue:{cycle.id}:finance_allocation:")
                    )
                )
            ).scalars()
        )
    assert [(m.kind, m.recipients[0]["email"]) for m in told] == [("submission_overdue", "chutich@lang-son.example")]
    (email,) = told
    assert email.subject.startswith("[Chưa nộp] ") and "Sở Tài chính" in email.text_body
    assert "Lý Văn Khánh" in email.text_body and "Lý Văn Khánh" in email.html_body
    assert "[[secret:" not in email.text_body and "[[secret:" not in email.html_body
