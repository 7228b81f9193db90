"""The rehearsal's simulated officials, in process (the fast tier; tests/test_rehearse.py runs the
whole `kehoach rehearse` on its stack): an official reads the email the mail catcher filed,
opens its link and sends the page's form, as a person would. For each kind of stage the shipped
plan has, in a rehearsed cycle whose year lasts seconds: the step's first email is acted on
once, and the service answers with its receipt. A role the person plays is left for them, and a
unit that stays silent never answers."""

from __future__ import annotations

import asyncio
import itertools
import random

import httpx
import pytest
from sqlalchemy import select

from approvals.models import Cycle
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
