"""The rehearsal's simulated officials, in process (the fast tier; tests/test_rehearse.py runs the
whole `kehoach rehearse` on its stack): an official reads the email the mail catcher filed,
opens its link and sends the page's form, as a person would. For each kind of stage the shipped
plan has, in a rehearsed cycle whose year lasts seconds: the step's first email is acted on
once, and the service answers with its receipt. A role the person plays is left for them, and a
unit that stays silent never answers."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random

import httpx
import pytest
from sqlalchemy import select

from approvals.models import ApprovalRequest, AuditEvent, Cycle
from approvals.plan import load_plan
from notifications.catcher import MaildirHandler
from notifications.models import OutboxMessage
from service.rehearsal.officials import Shares, SimulatedOfficials
from service.wiring import make_dispatcher
from tests.api.rehearsed_steps import STAGES, open_rehearsed_step
from tests.service.test_inbound_imap import until
from tests.support.paces import Pace

A_YEAR_IN_3_SECONDS = Pace("a year in 3 s", 365 * 86_400 / 3)  # every due time a second or two away
DILIGENT = Shares(send_back=0, silent=0, late=0)


async def _caught(database, settings, tmp_path, stage):
    """The step opened in a cycle of its own, and its first email filed by the mail catcher."""
    cycle_kind, stage_id, kind, unit, _ = stage
    year = await _unused_year(database)
    cycle, _, message, before = await open_rehearsed_step(
        database, settings, cycle_kind, stage_id, kind, unit, pace=A_YEAR_IN_3_SECONDS, period=year
    )
    maildir = tmp_path / "caught"
    MaildirHandler(maildir).box.add(make_dispatcher(settings, database).serialize(message))  # the bytes sent
    return cycle, message, before, maildir


async def _unused_year(database) -> str:
    """A year no cycle of this worker's sandbox has (a year's pages read the period as one)."""
    async with database.sessions() as session:
        taken = set((await session.execute(select(Cycle.period))).scalars())
    return next(str(year) for year in itertools.count(3000 + random.randrange(5000)) if str(year) not in taken)


async def _play(officials: SimulatedOfficials, done) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(officials.run(stop, poll=0.05))
    try:
        await until(done, timeout=30, what=f"the officials done (tally {dict(officials.tally)})")
    finally:
        stop.set()
        await task


def _officials(app, settings, cycle, maildir, *, played: frozenset = frozenset(), **options) -> SimulatedOfficials:
    """Simulated officials reading `maildir`, who open pages through the app in this process."""
    return SimulatedOfficials(
        load_plan(settings.plan_file),
        cycle,
        maildir,
        played=played,
        transport=httpx.ASGITransport(app=app),
        **options,
    )


async def _queued_since(database, before: set) -> list[OutboxMessage]:
    async with database.sessions() as session:
        return [m for m in (await session.execute(select(OutboxMessage))).scalars() if m.id not in before]


@pytest.mark.parametrize("stage", STAGES, ids=[s[2] for s in STAGES])
async def test_each_kind_of_step_is_acted_on_once_from_its_email(app, database, settings, tmp_path, stage):
    cycle, _, before, maildir = await _caught(database, settings, tmp_path, stage)
    officials = _officials(app, settings, cycle, maildir, shares=DILIGENT)
    done = "approved" if stage[2] == "approval" else "submitted"
    await _play(officials, lambda: officials.tally[done] == 1)
    assert dict(officials.tally) == {done: 1}
    kinds = [m.kind for m in await _queued_since(database, before)]
    # The service applied it: a decision is confirmed to its official; a submission goes on to its approvers.
    assert ("receipt" if done == "approved" else "approval_request") in kinds, kinds


async def test_a_decision_the_shares_send_back_asks_for_changes(app, database, settings, tmp_path):
    (approval,) = [s for s in STAGES if s[2] == "approval"]
    cycle, _, before, maildir = await _caught(database, settings, tmp_path, approval)
    officials = _officials(app, settings, cycle, maildir, shares=Shares(send_back=1, silent=0, late=0))
    await _play(officials, lambda: officials.tally["sent back"] == 1)
    assert dict(officials.tally) == {"sent back": 1}
    assert "receipt" in [m.kind for m in await _queued_since(database, before)]


async def test_a_played_role_is_left_for_the_person_and_a_silent_unit_never_answers(app, database, settings, tmp_path):
    plan = load_plan(settings.plan_file)
    (report,) = [s for s in STAGES if s[2] == "report"]
    cycle, message, before, maildir = await _caught(database, settings, tmp_path, report)
    (address,) = [r["email"] for r in message.recipients]
    (official,) = [o.id for o in plan.officials if str(o.email).lower() == address.lower()]
    told: list[tuple[str, str]] = []
    played = _officials(
        app,
        settings,
        cycle,
        maildir,
        played=frozenset({official}),
        shares=DILIGENT,
        for_you=lambda who, subject: told.append((who, subject)),
    )
    await _play(played, lambda: played.tally["left for you"] == 1)
    assert told == [(official, message.subject)]

    silent = _officials(app, settings, cycle, maildir, shares=Shares(send_back=0, silent=1, late=0))
    await _play(silent, lambda: silent.tally["silent"] == 1)
    assert dict(silent.tally) == {"silent": 1} and not silent.tasks
    queued = await _queued_since(database, before)
    assert [m.id for m in queued] == [message.id]  # the step's own email only: nobody acted


async def _open_for(database, settings, maildir, stage_id: str, subjects: list[str], year: str) -> tuple[Cycle, set]:
    """The stage's decision opened for each subject in one rehearsed cycle, each email filed; the
    cycle, and the outbox rows there are now (those emails among them)."""
    dispatcher = make_dispatcher(settings, database)
    for subject in subjects:
        cycle, _, message, _ = await open_rehearsed_step(
            database, settings, "annual", stage_id, "approval", subject, pace=A_YEAR_IN_3_SECONDS, period=year
        )
        MaildirHandler(maildir).box.add(dispatcher.serialize(message))
    return cycle, {m.id for m in await _queued_since(database, set())}


async def _file_new(database, settings, maildir, before: set, kind: str) -> list[OutboxMessage]:
    """The emails of `kind` queued since `before`, filed by the mail catcher as sent."""
    dispatcher = make_dispatcher(settings, database)
    new = [m for m in await _queued_since(database, before) if m.kind == kind]
    for message in new:
        MaildirHandler(maildir).box.add(dispatcher.serialize(message))
    return new


async def _decisions(database, cycle: Cycle, stage_id: str) -> list[tuple[str, str, str]]:
    """(official, outcome, channel) of each decision in the cycle's stage, as its audit row records it."""
    async with database.sessions() as session:
        requests = select(ApprovalRequest.id).where(
            ApprovalRequest.cycle_id == cycle.id, ApprovalRequest.stage == stage_id
        )
        ids = {str(i) for i in (await session.execute(requests)).scalars()}
        rows = (await session.execute(select(AuditEvent).where(AuditEvent.action == "decision.recorded"))).scalars()
        return sorted((e.data["official"], e.data["outcome"], e.data["channel"]) for e in rows if e.entity_id in ids)


@pytest.mark.parametrize(("send_back", "done"), [(0, "approved"), (1, "sent back")])
async def test_a_director_with_several_reports_waiting_decides_them_in_one_confirmation(
    app, database, settings, tmp_path, send_back, done
):
    """The report stage: the director who receives each unit's report has three waiting and
    decides them from the queue, not page by page (as with the 89 units of the shipped plan)."""
    plan = load_plan(settings.plan_file)
    units = plan.branches(plan.stage("annual", "annual_report"), dt.date(2081, 1, 15))[:3]
    maildir = tmp_path / "caught"
    cycle, before = await _open_for(database, settings, maildir, "annual_report", units, await _unused_year(database))
    officials = _officials(app, settings, cycle, maildir, shares=Shares(send_back=send_back, silent=0, late=0))
    await _play(officials, lambda: officials.tally[done] == 3)
    assert dict(officials.tally) == {done: 3, "queue confirmations": 1}
    decided = await _decisions(database, cycle, "annual_report")
    (director,) = {who for who, _, _ in decided}
    outcome = "approve" if done == "approved" else "request_changes"
    assert decided == [(director, outcome, "queue")] * 3
    assert len([m for m in await _queued_since(database, before) if m.kind == "receipt"]) == 3


async def test_the_outlets_heads_decide_on_their_pages_and_the_lead_director_from_the_queue(
    app, database, settings, tmp_path
):
    """The fan-out stage: each outlet's plan goes to its own head (one step each: the page), then
    to the lead agency's director, who has them all waiting (the queue)."""
    plan = load_plan(settings.plan_file)
    outlets = plan.branches(plan.stage("annual", "outlet_plans"), dt.date(2081, 1, 15))[:3]
    maildir = tmp_path / "caught"
    cycle, before = await _open_for(database, settings, maildir, "outlet_plans", outlets, await _unused_year(database))
    heads = _officials(app, settings, cycle, maildir, shares=DILIGENT)
    await _play(heads, lambda: heads.tally["approved"] == 3)
    assert dict(heads.tally) == {"approved": 3}
    assert len({who for who, _, channel in await _decisions(database, cycle, "outlet_plans") if channel == "link"}) == 3

    asked = await _file_new(database, settings, maildir, before, "approval_request")
    assert len(asked) == 3 and len({m.recipients[0]["email"] for m in asked}) == 1  # one director, three plans
    director = _officials(app, settings, cycle, maildir, shares=DILIGENT, seen=set(heads.seen))  # the new emails
    await _play(director, lambda: director.tally["approved"] == 3)
    assert dict(director.tally) == {"approved": 3, "queue confirmations": 1}
    assert [channel for *_, channel in await _decisions(database, cycle, "outlet_plans")].count("queue") == 3
