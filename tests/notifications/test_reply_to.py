"""The reply address on the emails that ask for a decision (issue 23): queued as a placeholder,
written as the Reply-To by the dispatcher as it sends (`service.wiring.make_dispatcher`, as
`kehoach dispatch` builds it), to the recording SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import pytest
from sqlalchemy import select

from approvals.config import PACKAGED_PLAN, Settings
from approvals.db import utcnow
from approvals.errors import InvalidLink
from approvals.models import Assignment, Cycle
from approvals.plan import load_plan
from approvals.routing import link_views, steps
from approvals.routing.submissions import open_submission
from approvals.running.chasing import rotate_links
from approvals.tokens import REPLY_ADDRESS, derive_reply_token, derive_token, reply_token_of
from notifications.composing import PermanentFailure, placeholder
from notifications.dispatcher import Dispatcher
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.render import Renderer
from service.wiring import make_dispatcher
from tests.notifications.helpers import smtp_config

PLAN = load_plan(PACKAGED_PLAN)
REPLY_DOMAIN = "reply.lang-son.example"
SECRET = secrets.token_urlsafe(48)


@pytest.fixture
def smtp(smtp_server):
    """The recording server, with no scripted failures left from another test."""
    with smtp_server.lock:
        smtp_server.replies.clear()
    return smtp_server


def _settings(smtp, *, reply_domain: str = REPLY_DOMAIN) -> Settings:
    return Settings(
        link_secret=SECRET,
        reply_domain=reply_domain,
        smtp_port=smtp.port,
        public_base_url="https://kehoach.lang-son.example",
    )


async def _ask(db, settings: Settings) -> Assignment:
    """A step opened, and its approver's request email queued in the same transaction."""
    async with db.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="annual", period=f"r-{uuid.uuid4().hex[:10]}", starts_on=dt.date(2026, 1, 15)
        )
        opened = await steps.open_request(
            session,
            plan=PLAN,
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id="dic_direction",
            waiter_ref=None,
            link_ttl=dt.timedelta(days=30),
            now=utcnow(),
        )
        emails = Emails.of(PLAN, settings, Renderer())
        assert await emails.approval_links(session, opened.request, cycle, opened.new_assignments) == 1
    [new] = opened.new_assignments
    return new.assignment


async def _sent(db, smtp, settings: Settings, key: str):
    """Send what is due with the dispatcher `kehoach dispatch` runs; the email of `key` as received."""
    assert await make_dispatcher(settings, db).run_once() == 1
    async with db.sessions() as session:
        message_id = (
            await session.execute(select(OutboxMessage.message_id).where(OutboxMessage.idempotency_key == key))
        ).scalar_one()
    return smtp.wait_for(lambda received: received.message["Message-ID"] == message_id, timeout=10).message


async def _stored(db, key: str) -> list[str]:
    """Every value of the outbox row, as text."""
    async with db.sessions() as session:
        row = (await session.execute(select(OutboxMessage.__table__).where(OutboxMessage.idempotency_key == key))).one()
    return [str(value) for value in row]


async def _opens(db, token: str) -> uuid.UUID:
    async with db.sessions() as session:
        return (await link_views.view_reply(session, token, now=utcnow())).assignment.id


async def test_the_request_and_its_reminder_each_carry_their_own_reply_address(private_database, smtp):
    db, settings = private_database, _settings(smtp)
    secret = settings.link_secret_bytes()
    assignment = await _ask(db, settings)
    key = f"approval_request:{assignment.id}:1"
    token = derive_reply_token(secret, assignment.id, 1)

    message = await _sent(db, smtp, settings, key)
    assert str(message["Reply-To"]) == f"duyet+{token}@{REPLY_DOMAIN}"
    assert message["From"].addresses[0].addr_spec == settings.mail_from  # the sender is unchanged
    assert f"/a/{derive_token(secret, assignment.id, 1)}" in message.get_body(("plain",)).get_content()
    # The outbox keeps a placeholder, never the token (in no column, in no case), nor the link's.
    stored = await _stored(db, key)
    assert placeholder(REPLY_ADDRESS, f"{assignment.id}:1") in stored
    for secret_text in (token, token.upper(), derive_token(secret, assignment.id, 1)):
        assert not any(secret_text in value for value in stored), secret_text
    # What a reply to it is addressed to opens that assignment.
    replied = reply_token_of(str(message["Reply-To"]), local_part="duyet", domain=REPLY_DOMAIN)
    assert await _opens(db, replied) == assignment.id

    async with db.transaction() as session:  # the sweep's reminder: a new generation, emailed
        request = await steps.lock_request(session, assignment.request_id)
        reminded = await rotate_links(session, plan=PLAN, secret=secret, request=request, now=utcnow())
        assert request is not None
        cycle = await session.get(Cycle, request.cycle_id)
        assert cycle is not None
        await Emails.of(PLAN, settings, Renderer()).approval_links(session, request, cycle, reminded, kind="reminder")
    reminder = await _sent(db, smtp, settings, f"reminder:{assignment.id}:2")
    fresh = derive_reply_token(secret, assignment.id, 2)
    assert str(reminder["Reply-To"]) == f"duyet+{fresh}@{REPLY_DOMAIN}" and fresh != token
    assert await _opens(db, fresh) == assignment.id
    with pytest.raises(InvalidLink):
        await _opens(db, token)  # the first email's reply address died with its link


async def test_with_no_reply_domain_no_email_carries_a_reply_to(private_database, smtp):
    db = private_database
    off = _settings(smtp, reply_domain="")
    assignment = await _ask(db, off)
    key = f"approval_request:{assignment.id}:1"
    assert placeholder(REPLY_ADDRESS, f"{assignment.id}:1") not in await _stored(db, key)
    assert "Reply-To" not in await _sent(db, smtp, off, key)
    # Queued while replies were on, sent once they are off: sent, without one.
    later = await _ask(db, _settings(smtp))
    later_key = f"approval_request:{later.id}:1"
    assert placeholder(REPLY_ADDRESS, f"{later.id}:1") in await _stored(db, later_key)
    assert "Reply-To" not in await _sent(db, smtp, off, later_key)


async def test_a_unit_asked_to_submit_gets_no_reply_to(private_database, smtp):
    db, settings = private_database, _settings(smtp)
    async with db.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="annual", period=f"r-{uuid.uuid4().hex[:10]}", starts_on=dt.date(2026, 7, 1)
        )
        opened = await open_submission(
            session,
            plan=PLAN,
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id="finance_allocation",
            subject="",
            waiter_ref=None,
            now=utcnow(),
            link_ttl=dt.timedelta(days=30),
        )
        emails = Emails.of(PLAN, settings, Renderer())
        assert await emails.submission_link(session, opened.opened.request, cycle, opened.asked) == 1
    link = opened.asked.link
    key = f"submission_request:{link.id}:1"
    stored = await _stored(db, key)
    assert not any("reply_address" in value for value in stored)
    message = await _sent(db, smtp, settings, key)
    assert "Reply-To" not in message
    assert f"/s/{derive_token(settings.link_secret_bytes(), link.id, 1)}" in message.get_body(("plain",)).get_content()


def _outbox_message(reply_to: str | None) -> OutboxMessage:
    return OutboxMessage(
        message_id=f"<{uuid.uuid4()}@kehoach.test>",
        subject="Đề nghị phê duyệt",
        text_body="Xin chào\n",
        html_body="<p>Xin chào</p>",
        recipients=[{"name": "Nông Thị Hạnh", "email": "hanh.nt@lang-son.example"}],
        attachments=[],
        reply_to=reply_to,
    )


@pytest.mark.parametrize("resolved", ["duyet+abc@reply.example", ""])
def test_the_written_reply_to_is_the_email_message_s(resolved):
    dispatcher = Dispatcher(None, smtp_config(25), resolvers={REPLY_ADDRESS: lambda argument: resolved})
    message = _outbox_message(placeholder(REPLY_ADDRESS, f"{uuid.uuid4()}:1"))
    written = dispatcher.serialize(message)
    reference = dispatcher.build(message).as_bytes()
    expected = f"Reply-To: {resolved}".encode()
    assert (expected in written, expected in reference) == (bool(resolved), bool(resolved))
    assert (b"Reply-To" in written, b"Reply-To" in reference) == (bool(resolved), bool(resolved))


@pytest.mark.parametrize(
    "resolved", ["duyet+abc@reply.example\r\nBcc: victim@example.com", "Đồng chí <duyet@reply.example>", "a, b@c"]
)
def test_a_reply_to_that_is_not_one_address_fails_the_email_for_good(resolved):
    dispatcher = Dispatcher(None, smtp_config(25), resolvers={REPLY_ADDRESS: lambda argument: resolved})
    message = _outbox_message(placeholder(REPLY_ADDRESS, f"{uuid.uuid4()}:1"))
    with pytest.raises(PermanentFailure):
        dispatcher.serialize(message)
    with pytest.raises(PermanentFailure):
        dispatcher.build(message)
