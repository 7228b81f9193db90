"""The end of the annual cycle with the sweep, on the shipped plan at its real size, the clock
moved by time-machine: the annual reports (stage 7), which the chain leaves at their due time
whether every unit has settled or not, and the consolidated report (stage 8), a step of kind
consolidation, reminded, escalated and expired on its own dates like every other kind. Each
as planned and rehearsed (the year compressed into 30 minutes: `tests/support/paces.py`)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select, update

from approvals import consolidated
from approvals.config import PACKAGED_PLAN, Settings
from approvals.db import Database, utcnow
from approvals.models import ApprovalRequest, CycleStage, SubmissionLink, Wake
from approvals.plan import load_plan
from approvals.routing.steps import get_or_create_cycle, stage_of
from approvals.routing.submitting import parse_submission, submit
from approvals.statuses import WakeStatus
from approvals.tokens import derive_token
from flows.stages import open_branches
from flows.sweep import sweep_with_emails
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.render import Renderer
from tests.support.paces import AS_PLANNED, REHEARSED, Pace

PACES = pytest.mark.parametrize("pace", [AS_PLANNED, REHEARSED], ids=lambda p: p.name)

# These count each stage's reminders and notices; the daily digest has its own tests
# (tests/api/test_queue_digest.py).
SETTINGS = Settings(link_secret="c" * 48, digest=False)
PLAN = load_plan(PACKAGED_PLAN)
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
STARTS = dt.date(2026, 1, 15)
TTL = dt.timedelta(days=SETTINGS.link_ttl_days)


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=TZ)


async def _begin(db: Database, pace: Pace) -> None:
    """The cycle of 2026, at its pace, as a run takes it."""
    async with db.transaction() as session:
        pace.mark(await get_or_create_cycle(session, kind="annual", period="2026", starts_on=STARTS), STARTS)


def end_of(day: dt.date) -> dt.datetime:
    return at(day, 0) + dt.timedelta(days=1, microseconds=-1)


def email(official_id: str) -> str:
    return str(PLAN.official(official_id).email)


async def _open(db: Database, stage_id: str) -> int:
    return await open_branches(
        db,
        plan=PLAN,
        settings=SETTINGS,
        renderer=Renderer(),
        cycle_kind="annual",
        period="2026",
        starts_on=STARTS,
        stage_id=stage_id,
        waiter_ref=None,
    )


async def _sweep(db: Database) -> list[tuple[str, str]]:
    """(stage, event) of one pass of the sweep, as the scheduled flow runs it."""
    events = await sweep_with_emails(db, plan=PLAN, settings=SETTINGS, renderer=Renderer())
    return sorted((e.request.stage, e.kind.value) for e in events)


class Outbox:
    def __init__(self, db: Database):
        self.db, self.seen = db, set()

    async def new(self) -> list[tuple[str, str]]:
        """(kind, recipient) of every email queued since the last look."""
        async with self.db.sessions() as session:
            rows = [m for m in (await session.execute(select(OutboxMessage))).scalars() if m.id not in self.seen]
        self.seen |= {m.id for m in rows}
        return sorted((m.kind, m.recipients[0]["email"]) for m in rows)


async def _wakes(db: Database, stage: str) -> list[tuple[str, str]]:
    async with db.sessions() as session:
        return [
            (w.reason, w.status)
            for w in (await session.execute(select(Wake).where(Wake.stage == stage).order_by(Wake.id))).scalars()
        ]


@PACES
async def test_the_chain_leaves_the_annual_reports_at_their_due_time_once(private_database, pace):
    """Stage 7 (go_on_at_due) opens on 1 October for every unit in force; with units still
    silent on 30 November, the sweep wakes the run there, once, however many passes follow."""
    db = private_database
    await _begin(db, pace)
    with time_machine.travel(pace.wall(at(dt.date(2026, 10, 1), 9), STARTS), tick=False):
        branches = await _open(db, "annual_report")
    assert branches == len(consolidated.report_units(PLAN, dt.date(2026, 10, 1))) >= 85
    async with db.sessions() as session:
        row = (await session.execute(select(CycleStage).where(CycleStage.stage == "annual_report"))).scalar_one()
    assert abs(row.goes_on_at - pace.wall(end_of(dt.date(2026, 11, 29)), STARTS)) <= dt.timedelta(microseconds=1)

    with time_machine.travel(pace.wall(at(dt.date(2026, 11, 29), 20), STARTS), tick=False):
        await _sweep(db)
    assert await _wakes(db, "annual_report") == []  # not before its due time

    with time_machine.travel(pace.sweep_at(at(dt.date(2026, 11, 30), 8), STARTS, 1), tick=False):
        await _sweep(db)
        assert await _wakes(db, "annual_report") == [("stage_due", "queued")]
        await _sweep(db)  # a second pass at the same moment adds nothing
    assert await _wakes(db, "annual_report") == [("stage_due", "queued")]
    async with db.transaction() as session:  # the service delivered it: the run went on to stage 8
        await session.execute(update(Wake).values(status=WakeStatus.done.value))
    with time_machine.travel(pace.wall(at(dt.date(2026, 12, 2), 8), STARTS), tick=False):
        await _sweep(db)
    assert await _wakes(db, "annual_report") == [("stage_due", "done")]  # never again


async def test_a_settled_annual_report_stage_wakes_nothing_at_its_due_time(private_database):
    """A stage that settled before its due time already woke the run (stage_settled); its due
    time adds no second wake."""
    db = private_database
    with time_machine.travel(at(dt.date(2026, 10, 1), 9), tick=False):
        await _open(db, "annual_report")
    async with db.transaction() as session:
        await session.execute(update(CycleStage).where(CycleStage.stage == "annual_report").values(status="done"))
    with time_machine.travel(at(dt.date(2026, 11, 30), 8), tick=False):
        await _sweep(db)
    assert await _wakes(db, "annual_report") == []


@PACES
@pytest.mark.parametrize("submitted", [True, False], ids=["submitted", "never_submitted"])
async def test_the_consolidated_report_is_reminded_escalated_and_expired_on_its_own_dates(
    private_database, submitted, pace
):
    """Stage 8 opens when the chain leaves stage 7 (30 November) and falls due on 14 December:
    the coordinator is reminded to submit (or the director to decide) 7 and 2 days before; at
    the due time the PPC's Vice-Chair is brought in (a draft waiting for a decision) or told
    (nothing submitted); a week later an undecided draft expires, never approved."""
    db, outbox = private_database, Outbox(private_database)
    await _begin(db, pace)
    with time_machine.travel(pace.wall(at(dt.date(2026, 11, 30), 9), STARTS), tick=False):
        assert await _open(db, "consolidated_report") == 1
        assert await outbox.new() == [("submission_request", email("dost_coordinator"))]
        async with db.sessions() as session:
            request = (await session.execute(select(ApprovalRequest))).scalar_one()
        assert abs(request.due_at - pace.wall(end_of(dt.date(2026, 12, 14)), STARTS)) <= dt.timedelta(microseconds=1)
        if submitted:
            async with db.transaction() as session:
                report = await consolidated.gather(session, PLAN, 2026, now=utcnow())
                link = (await session.execute(select(SubmissionLink))).scalar_one()
                data = {
                    **parse_submission(
                        stage_kind=stage_of(PLAN, "annual", "consolidated_report").kind, text="Đánh giá chung."
                    ),
                    "report": consolidated.snapshot(report),
                }
                opened = await submit(
                    session,
                    plan=PLAN,
                    secret=SETTINGS.link_secret_bytes(),
                    now=utcnow(),
                    token=derive_token(SETTINGS.link_secret_bytes(), link.id, 1),
                    data=data,
                    link_ttl=TTL,
                )
                await Emails.of(PLAN, SETTINGS, Renderer()).approval_links(
                    session, opened.request, opened.cycle, opened.new_assignments
                )
            assert await outbox.new() == [("approval_request", email("dost_director"))]
        assert await _sweep(db) == []

    waited_on = (
        ("reminder", email("dost_director")) if submitted else ("submission_request", email("dost_coordinator"))
    )  # the reminder to submit carries a fresh link
    for index, day in enumerate((dt.date(2026, 12, 8), dt.date(2026, 12, 13)), start=1):
        with time_machine.travel(pace.sweep_at(at(day, 8), STARTS, index), tick=False):
            assert await _sweep(db) == [("consolidated_report", "reminder")], day
            assert await outbox.new() == [waited_on], day
            assert await _sweep(db) == [] and await outbox.new() == []  # once only

    with time_machine.travel(pace.sweep_at(at(dt.date(2026, 12, 15), 8), STARTS, 3), tick=False):
        if submitted:
            assert await _sweep(db) == [("consolidated_report", "escalation")]
            assert await outbox.new() == [("escalation", email("ppc_vice_chair"))]
        else:
            assert await _sweep(db) == [("consolidated_report", "overdue")]
            assert await outbox.new() == [("submission_overdue", email("ppc_vice_chair"))]

    with time_machine.travel(pace.sweep_at(at(dt.date(2026, 12, 22), 8), STARTS, 4), tick=False):
        if submitted:
            assert await _sweep(db) == [("consolidated_report", "expired")]
            assert await outbox.new() == sorted(
                [
                    ("outcome", email("dost_coordinator")),
                    ("step_closed", email("dost_director")),
                    ("step_closed", email("ppc_vice_chair")),
                ]
            )
        else:  # nothing to decide: it keeps waiting for the coordinator, its superior told once
            assert await _sweep(db) == [] and await outbox.new() == []
    async with db.sessions() as session:
        request = (await session.execute(select(ApprovalRequest))).scalar_one()
        status = (await session.execute(select(CycleStage.status))).scalar_one()
    assert request.status == ("expired" if submitted else "awaiting_submission")
    assert status == ("expired" if submitted else "waiting")
    assert await _wakes(db, "consolidated_report") == ([("stage_settled", "queued")] if submitted else [])
