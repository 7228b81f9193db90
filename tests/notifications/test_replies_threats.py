"""The threats to deciding by reply (issue 23), each on a step of the shipped plan (the
submission's review, `dic_direction`; the gates are the same code for every kind): nothing changes
but the reply's own row, and the sender gets the answer the issue describes (with the page's link
only for the approver), or none. SQLite and PostgreSQL; the race on PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select, text, update

from approvals.db import utcnow
from approvals.models import Delegation
from approvals.routing.decisions import decide
from approvals.statuses import Outcome
from approvals.tokens import derive_token
from notifications.models import OutboxMessage, ReplyHandling
from tests.notifications.reply_mail import PLAN, Mailroom, message_id_of, reply

APPROVER = "dcst_director"  # asked to decide dic_direction (press_agency.director)
STRANGER = "mallory@gmail.example"
LINK_PATH = "https://kehoach.lang-son.example/a/"


def email_of(official_id: str) -> str:
    official = PLAN.official(official_id)
    assert official is not None
    return str(official.email)


async def asked(mailroom: Mailroom, stage_id: str = "dic_direction", official_id: str = APPROVER):
    request = await mailroom.open(stage_id)
    return request, await mailroom.request_email(request, official_id)


async def answers(mailroom: Mailroom) -> list:
    """The answers to replies, as their senders received them (everything queued is sent first)."""
    return [received for kind, received in await mailroom.deliver() if kind == "reply_answer"]


async def nothing_decided(mailroom: Mailroom, request, raw: bytes, handling: ReplyHandling, *, answered: bool):
    assert await mailroom.decisions(request.id) == [] and await mailroom.audit(request.id) == []
    [row] = await mailroom.inbound_of(message_id_of(raw))
    assert (row.outcome, row.answered) == (handling.value, answered)


async def test_a_spoofed_from_decides_nothing_and_its_answer_has_no_link(mailroom):
    request, email = await asked(mailroom)
    raw = reply(email, "Đồng ý", sender=STRANGER, name="Giám đốc Sở")  # the approver's name, not their address
    outcome = await mailroom.apply(raw, email)
    assert (outcome.handling, outcome.answered) == (ReplyHandling.not_the_approver, True)
    await nothing_decided(mailroom, request, raw, ReplyHandling.not_the_approver, answered=True)
    [answer] = await answers(mailroom)
    assert answer.envelope_to == [STRANGER]
    assert "không phải của người được đề nghị" in answer.text and "Chưa có gì được ghi nhận" in answer.text
    assert LINK_PATH not in answer.text + answer.html and "Reply-To" not in answer.message
    assert answer.message["Auto-Submitted"] == "auto-generated"  # nothing answers our answer


async def test_a_forged_authentication_results_from_an_untrusted_host_does_not_pass(mailroom):
    request, email = await asked(mailroom)
    raw = reply(email, "Đồng ý", sender=email_of(APPROVER), authserv_id="mx.attacker.example")
    outcome = await mailroom.apply(raw, email)
    assert (outcome.handling, outcome.answered) == (ReplyHandling.not_authenticated, True)
    await nothing_decided(mailroom, request, raw, ReplyHandling.not_authenticated, answered=True)
    [answer] = await answers(mailroom)
    # To the approver's own address: the link may go there (it is where the request went).
    assert answer.envelope_to == [email_of(APPROVER)] and LINK_PATH in answer.text
    assert "Không xác thực được người gửi" in answer.text
    # A trusted host that saw DMARC fail does not pass either.
    failed = reply(email, "Đồng ý", sender=email_of(APPROVER), authenticated=False)
    assert (await mailroom.apply(failed, email)).handling is ReplyHandling.not_authenticated
    assert await mailroom.decisions(request.id) == []
    await mailroom.deliver()


async def test_with_no_trusted_authserv_id_no_reply_passes(mailroom):
    mailroom.settings = mailroom.settings.model_copy(update={"reply_trusted_authserv_ids": ""})
    request, email = await asked(mailroom)
    raw = reply(email, "Đồng ý", sender=email_of(APPROVER))
    assert (await mailroom.apply(raw, email)).handling is ReplyHandling.not_authenticated
    assert await mailroom.decisions(request.id) == []
    await mailroom.deliver()


async def test_a_replayed_reply_decides_once_and_is_answered_at_most_once(mailroom):
    request, email = await asked(mailroom)
    raw = reply(email, "Đồng ý", sender=email_of(APPROVER))
    first, second = await mailroom.apply(raw, email), await mailroom.apply(raw, email)
    assert [first.handling, second.handling] == [ReplyHandling.applied, ReplyHandling.duplicate]
    assert len(await mailroom.decisions(request.id)) == 1 and len(await mailroom.inbound_of(message_id_of(raw))) == 1
    sent = await mailroom.deliver()
    assert [kind for kind, _ in sent].count("receipt") == 1 and "reply_answer" not in [kind for kind, _ in sent]
    # A failed reply replayed: answered once, however often it comes.
    _, other = await asked(mailroom)
    bad = reply(other, "Xin chào", sender=email_of(APPROVER))
    assert [(await mailroom.apply(bad, other)).answered for _ in range(3)] == [True, False, False]
    assert len(await answers(mailroom)) == 1


async def test_the_same_answer_after_the_step_was_decided_changes_nothing(mailroom):
    request, email = await asked(mailroom)
    assert (await mailroom.apply(reply(email, "Đồng ý", sender=email_of(APPROVER)), email)).handling.value == "applied"
    await mailroom.deliver()
    again = reply(email, "Đồng ý", sender=email_of(APPROVER))  # a new Message-ID: sent again from the phone
    outcome = await mailroom.apply(again, email)
    assert (outcome.handling, outcome.answered) == (ReplyHandling.already_decided, True)
    [decision] = await mailroom.decisions(request.id)
    assert decision.outcome == "approve"
    [answer] = await answers(mailroom)
    assert "đã được ghi nhận trước đó" in answer.text and LINK_PATH not in answer.text  # no live link left


async def test_a_reply_to_a_step_closed_by_someone_else_changes_nothing(mailroom):
    """The budget above the threshold asks two; the finance director's rejection settles it: the
    vice-chair's reply comes to a closed step."""
    request = await mailroom.open("finance_allocation", data={"amount": 2_500_000_000})
    email = await mailroom.request_email(request, "ppc_vice_chair")
    director = next(a for a in await mailroom.assignments(request.id) if a.official_id == "dof_director")
    secret = mailroom.settings.link_secret_bytes()
    async with mailroom.db.transaction() as session:  # the director decides on the page
        await decide(
            session,
            token=derive_token(secret, director.id, director.token_generation),
            outcome=Outcome.reject,
            comment="Vượt dự toán.",
            now=utcnow(),
            plan=PLAN,
            secret=secret,
        )
    raw = reply(email, "Đồng ý", sender=email_of("ppc_vice_chair"))
    outcome = await mailroom.apply(raw, email)
    assert (outcome.handling, outcome.answered) == (ReplyHandling.closed_step, True)
    assert [d.official_id for d in await mailroom.decisions(request.id)] == ["dof_director"]
    [answer] = await answers(mailroom)
    assert "đã kết thúc" in answer.text and LINK_PATH not in answer.text


async def test_a_reply_forwarded_by_a_colleague_gets_an_answer_without_the_link(mailroom):
    """The director forwarded the request; a colleague of the same agency answered it."""
    request, email = await asked(mailroom)
    colleague = next(o for o in PLAN.officials if o.agency == PLAN.official(APPROVER).agency and o.id != APPROVER)
    raw = reply(email, "Đồng ý", sender=str(colleague.email), name=colleague.name)
    outcome = await mailroom.apply(raw, email)
    assert (outcome.handling, outcome.answered) == (ReplyHandling.not_the_approver, True)
    await nothing_decided(mailroom, request, raw, ReplyHandling.not_the_approver, answered=True)
    [answer] = await answers(mailroom)
    assert answer.envelope_to == [str(colleague.email)] and colleague.name in answer.text
    assert LINK_PATH not in answer.text + answer.html


async def test_a_live_delegate_decides_by_replying_and_gets_the_link_when_it_fails(mailroom):
    colleague = next(o for o in PLAN.officials if o.agency == PLAN.official(APPROVER).agency and o.id != APPROVER)
    request, email = await asked(mailroom)
    today = utcnow().date()
    async with mailroom.db.transaction() as session:  # the director is away: the deputy acts for them
        session.add(
            Delegation(
                delegator=APPROVER,
                delegate=colleague.id,
                role=None,
                valid_from=today - dt.timedelta(days=1),
                valid_to=today + dt.timedelta(days=7),
                created_by="test",
            )
        )
    try:
        unreadable = reply(email, "Tôi đã xem", sender=str(colleague.email))
        assert (await mailroom.apply(unreadable, email)).handling is ReplyHandling.unreadable
        [answer] = await answers(mailroom)
        assert answer.envelope_to == [str(colleague.email)] and LINK_PATH in answer.text
        applied = await mailroom.apply(reply(email, "Duyệt", sender=str(colleague.email)), email)
        assert applied.handling is ReplyHandling.applied
        [decision] = await mailroom.decisions(request.id)
        assert decision.official_id == APPROVER  # the step's own assignment, decided by its delegate's reply
        await mailroom.deliver()
    finally:  # the module's later steps ask the director again
        async with mailroom.db.transaction() as session:
            await session.execute(update(Delegation).values(revoked_at=utcnow()))


async def test_an_out_of_office_reply_gets_no_answer_and_changes_nothing(mailroom):
    request, email = await asked(mailroom)
    raw = reply(
        email,
        "Tôi đang đi công tác đến hết ngày 15/12. Đồng ý để đồng chí Phó Giám đốc xử lý.",
        sender=email_of(APPROVER),
        extra={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"},
    )
    outcome = await mailroom.apply(raw, email)
    assert (outcome.handling, outcome.answered) == (ReplyHandling.automatic, False)
    await nothing_decided(mailroom, request, raw, ReplyHandling.automatic, answered=False)
    # Nor when it also fails an earlier gate (a stranger's robot): no answer, whatever the gate.
    robot = reply(email, "Trả lời tự động", sender=STRANGER, extra={"Subject": "Trả lời tự động: đi vắng"})
    assert (await mailroom.apply(robot, email)).answered is False
    assert await answers(mailroom) == []


async def test_another_official_s_reply_address_is_not_theirs_to_answer(mailroom):
    """The finance director answers with the culture director's reply address (its token is valid)."""
    request, email = await asked(mailroom)
    await asked(mailroom, "finance_allocation", "dof_director")
    raw = reply(email, "Đồng ý", sender=email_of("dof_director"))
    outcome = await mailroom.apply(raw, email)
    assert (outcome.handling, outcome.answered) == (ReplyHandling.not_the_approver, True)
    await nothing_decided(mailroom, request, raw, ReplyHandling.not_the_approver, answered=True)
    [answer] = await answers(mailroom)
    assert answer.envelope_to == [email_of("dof_director")] and LINK_PATH not in answer.text


async def test_an_unreadable_first_line_is_answered_with_the_link(mailroom):
    request, email = await asked(mailroom)
    raw = reply(email, "Không đồng ý lắm, để tôi xem lại", sender=email_of(APPROVER))
    outcome = await mailroom.apply(raw, email)
    assert (outcome.handling, outcome.answered) == (ReplyHandling.unreadable, True)
    await nothing_decided(mailroom, request, raw, ReplyHandling.unreadable, answered=True)
    [answer] = await answers(mailroom)
    assert answer.envelope_to == [email_of(APPROVER)] and "Chưa nhận ra ý kiến" in answer.text
    [link] = [line for line in answer.text.splitlines() if line.startswith(LINK_PATH)]
    assert f'href="{link}"' in answer.html
    opened = await mailroom.assignments(request.id)
    assert link == LINK_PATH + derive_token(mailroom.settings.link_secret_bytes(), opened[0].id, 1)


async def test_a_rejection_without_a_comment_is_answered_and_records_nothing(mailroom):
    request, email = await asked(mailroom)
    raw = reply(email, "Từ chối\n\nSent from my iPhone", sender=email_of(APPROVER))
    outcome = await mailroom.apply(raw, email)
    assert (outcome.handling, outcome.answered) == (ReplyHandling.unreadable, True)
    await nothing_decided(mailroom, request, raw, ReplyHandling.unreadable, answered=True)
    [answer] = await answers(mailroom)
    assert "vui lòng ghi ý kiến" in answer.text and LINK_PATH in answer.text


async def test_an_address_that_is_not_a_reply_address_is_a_bad_token(mailroom):
    request, email = await asked(mailroom)
    raw = reply(email, "Đồng ý", sender=email_of(APPROVER))
    outcome = await mailroom.apply(raw, email, to="duyet+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@reply.lang-son.example")
    assert (outcome.handling, outcome.answered) == (ReplyHandling.bad_token, True)
    await nothing_decided(mailroom, request, raw, ReplyHandling.bad_token, answered=True)
    [answer] = await answers(mailroom)
    assert "không còn hiệu lực" in answer.text and LINK_PATH not in answer.text


@pytest.mark.postgres_only
async def test_two_receivers_applying_the_same_reply_at_once_decide_once(mailroom):
    request, email = await asked(mailroom)
    raw = reply(email, "Đồng ý", sender=email_of(APPROVER))
    # All four read the Message-ID as new before any commits: inbound_reply is held against
    # writes (reads go on) until each of the four waits on that hold, or on one another.
    async with mailroom.db.engine.begin() as holder:
        await holder.execute(text("LOCK TABLE inbound_reply IN SHARE ROW EXCLUSIVE MODE"))
        held_by = (await holder.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        applying = [asyncio.ensure_future(mailroom.apply(raw, email)) for _ in range(4)]
        await _until_waiting(mailroom.db, held_by, 4)
    outcomes = await asyncio.gather(*applying)
    handled = sorted(o.handling.value for o in outcomes)
    # The losers rolled back on the Message-ID's unique key.
    assert sorted(o.detail for o in outcomes if o.handling is ReplyHandling.duplicate) == ["applied elsewhere"] * 3
    assert handled == ["applied", "duplicate", "duplicate", "duplicate"]
    assert len(await mailroom.decisions(request.id)) == 1 and len(await mailroom.audit(request.id)) == 1
    assert len(await mailroom.inbound_of(message_id_of(raw))) == 1
    sent = [kind for kind, _ in await mailroom.deliver()]
    assert sent.count("receipt") == 1 and "reply_answer" not in sent


async def _until_waiting(db, held_by: int, count: int, timeout: float = 60.0) -> None:
    """Until `count` sessions wait on PostgreSQL session `held_by`'s locks, or on those waiting."""
    waiting = text(
        "WITH RECURSIVE blocked(pid) AS ("
        " SELECT pid FROM pg_stat_activity WHERE CAST(:held_by AS integer) = ANY(pg_blocking_pids(pid))"
        " UNION SELECT a.pid FROM pg_stat_activity a JOIN blocked b ON b.pid = ANY(pg_blocking_pids(a.pid))"
        ") SELECT count(*) FROM blocked"
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        async with db.engine.connect() as watcher:
            now_waiting = (await watcher.execute(waiting, {"held_by": held_by})).scalar_one()
        if now_waiting >= count:
            return
        assert loop.time() < deadline, f"{now_waiting} of {count} receivers came to wait within {timeout} s"
        await asyncio.sleep(0.05)  # polling the condition, not waiting for time to pass


async def test_the_coordinators_hear_once_a_day_that_the_replies_mailbox_is_unreachable(mailroom):
    """`kehoach inbound`'s alert (service.inbound.make_outage_alert): each coordinator of the day is
    told once; a second reader noticing the same outage the same day queues nothing more. At 09:00
    in Lạng Sơn: the day is the province's, and 20 minutes after 23:45 is another day (run 31)."""
    now = dt.datetime.combine(utcnow().astimezone(PLAN.tz).date(), dt.time(9), tzinfo=PLAN.tz).astimezone(dt.UTC)
    told = []
    for later in (dt.timedelta(0), dt.timedelta(minutes=20)):
        async with mailroom.db.transaction() as session:
            told.append(
                await mailroom.emails.replies_unread(
                    session, mailbox="duyet@mx.lang-son.example/INBOX", detail="mx:993: timed out", at=now + later
                )
            )
    coordinators = {str(p.email) for p in PLAN.holders("lead_agency.coordinator", now.astimezone(PLAN.tz).date())}
    async with mailroom.db.reads() as session:
        queued = (
            await session.execute(
                select(OutboxMessage).where(OutboxMessage.idempotency_key.like("attention:replies_unread:%"))
            )
        ).scalars()
        to = {r["email"] for m in queued for r in m.recipients if "mx:993: timed out" in m.text_body}
    assert told == [len(coordinators), 0] and coordinators and to == coordinators
