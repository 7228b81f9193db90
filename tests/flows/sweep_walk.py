"""One annual cycle of the shipped plan walked through the sweep with the clock moved by
time-machine: its stages' kinds and dates (`STAGES`), how the cycle was started (`SCENARIOS`:
on time, late keeping the plan's dates, late shifted, rehearsed), and `Walk`, which opens the
branches as the run does, submits as the units do and looks at every email queued once. Used by
test_sweep_every_stage.py."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select

from approvals.clock import deadlines
from approvals.config import PACKAGED_PLAN, Settings
from approvals.db import Database, utcnow
from approvals.models import ApprovalRequest, Cycle, SubmissionLink, Wake
from approvals.plan import load_plan
from approvals.routing import steps
from approvals.routing.submitting import parse_submission, submit
from approvals.tokens import derive_token
from flows.stages import open_branch
from flows.sweep import sweep_with_emails
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.render import Renderer
from tests.support.paces import AS_PLANNED, REHEARSED, Pace

# These count each stage's reminders and notices; the daily digest has its own tests
# (tests/api/test_queue_digest.py).
SETTINGS = Settings(link_secret="e" * 48, digest=False)
PLAN = load_plan(PACKAGED_PLAN)
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
STARTS = dt.date(2026, 1, 15)
LATE = dt.date(2026, 12, 1)  # a start 320 days after the plan's 15 January
SHIFT = 320
TTL = dt.timedelta(days=SETTINGS.link_ttl_days)


@dataclass(frozen=True)
class Kind:
    stage: str
    kind: str
    planned_due: dt.date  # the last day of the step in the plan's own calendar for 2026
    reminders: tuple[int, ...]  # days before the due time
    at_due: str  # escalate | proceed
    superior: str | None  # who the stage's escalate_to is on the day


STAGES = [
    Kind("dic_direction", "submission", dt.date(2026, 1, 29), (7, 2), "escalate", "ppc_vice_chair"),
    Kind("propaganda_guidance", "submission", dt.date(2026, 2, 12), (7, 2), "proceed", None),
    Kind("materials", "submission", dt.date(2026, 3, 16), (14, 3), "escalate", "dost_director"),
    Kind("outlet_plans", "fan_out", dt.date(2026, 3, 31), (7, 2), "escalate", "ppc_vice_chair"),
    Kind("finance_allocation", "budget", dt.date(2026, 4, 15), (14, 3), "escalate", "ppc_chair"),
    Kind("annual_report", "report", dt.date(2026, 11, 29), (14, 7, 2), "escalate", "ppc_vice_chair"),
]
REPORT_OPENS = dt.date(2026, 10, 1)


@dataclass(frozen=True)
class Scenario:
    name: str
    shift: int
    opened: dt.date  # the day stages 1-5 open (09:00)
    submit_single: bool  # a single-branch stage is submitted at once (else only fan-outs' first branches are)
    pace: Pace = AS_PLANNED

    def wall(self, planned: dt.datetime) -> dt.datetime:
        return self.pace.wall(planned, STARTS)

    def sweep_at(self, planned: dt.datetime, index: int) -> dt.datetime:
        return self.pace.sweep_at(planned, STARTS, index)

    def due(self, kind: Kind) -> dt.date:
        if self.shift:
            return kind.planned_due + dt.timedelta(days=self.shift)
        # Kept dates: never due sooner than the plan's 7 days' notice after the step opens.
        return max(kind.planned_due, self.opened + dt.timedelta(days=7))

    def report_opens(self) -> dt.date:
        return max(REPORT_OPENS + dt.timedelta(days=self.shift), self.opened)


SCENARIOS = [
    Scenario("on_time", 0, STARTS, True),
    Scenario("kept_late", 0, LATE, False),
    Scenario("shifted", SHIFT, LATE, True),
    Scenario("rehearsed", 0, STARTS, True, REHEARSED),
]


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=TZ)


def email(official_id: str) -> str:
    return str(PLAN.official(official_id).email)


@dataclass
class Branch:
    kind: Kind
    subject: str
    request_id: uuid.UUID
    officer: str  # who is asked to submit (or who asked, for an approval stage)
    approver: str  # the first approver asked once it is submitted
    submitted: bool


class Walk:
    """One cycle on its own database; every email queued is looked at once."""

    def __init__(self, db: Database, scenario: Scenario):
        self.db, self.scenario = db, scenario
        self.renderer = Renderer()
        self.seen: set = set()
        self.branches: list[Branch] = []
        self.cycle: Cycle | None = None

    async def start(self) -> None:
        async with self.db.transaction() as session:
            self.cycle = await steps.get_or_create_cycle(session, kind="annual", period="2026", starts_on=STARTS)
            self.cycle.shift_days = self.scenario.shift
            self.scenario.pace.mark(self.cycle, STARTS)
        await self.emails()

    async def open(self, kind: Kind, *, submit_first: bool = True) -> None:
        """Open every branch of the stage as the run does, and submit the first branch at once
        (unless `submit_first` is False, or the scenario leaves single-branch stages unsubmitted)."""
        stage = steps.stage_of(PLAN, "annual", kind.stage)
        day = deadlines.local_day(PLAN, utcnow())
        subjects = PLAN.branches(stage, day)
        async with self.db.transaction() as session:
            cycle = await session.get(Cycle, self.cycle.id)
            for subject in subjects:
                await open_branch(
                    session,
                    plan=PLAN,
                    settings=SETTINGS,
                    renderer=self.renderer,
                    cycle=cycle,
                    stage=stage,
                    subject=subject,
                    waiter_ref=None,
                    link_ttl=TTL,
                    data=None,
                )
        async with self.db.sessions() as session:
            rows = {
                r.subject: r
                for r in (
                    await session.execute(
                        select(ApprovalRequest).where(
                            ApprovalRequest.cycle_id == self.cycle.id, ApprovalRequest.stage == kind.stage
                        )
                    )
                ).scalars()
            }
        assert sorted(rows) == sorted(subjects)
        for subject in subjects:
            officer = PLAN.holders(stage.requester, day, unit=subject or None)[0].id
            approver = PLAN.holders(stage.approvers[0], day, unit=subject or None)[0].id
            self.branches.append(Branch(kind, subject, rows[subject].id, officer, approver, False))
            due = self.scenario.wall(at(self.scenario.due(kind), 0) + dt.timedelta(days=1, microseconds=-1))
            assert abs(rows[subject].due_at - due) <= dt.timedelta(microseconds=1)  # a rehearsal's rounding
        opened = await self.emails()
        if stage.kind.submitted:
            assert opened == sorted(("submission_request", email(b.officer)) for b in self.of(kind))
            if submit_first and (len(subjects) > 1 or self.scenario.submit_single):
                await self.submit(self.of(kind)[0])
        else:
            assert opened == [("approval_request", email(self.of(kind)[0].approver))]
            self.of(kind)[0].submitted = True

    async def submit(self, branch: Branch) -> None:
        stage = steps.stage_of(PLAN, "annual", branch.kind.stage)
        async with self.db.transaction() as session:
            link = (
                await session.execute(select(SubmissionLink).where(SubmissionLink.request_id == branch.request_id))
            ).scalar_one()
            data = parse_submission(
                stage_kind=stage.kind,
                text="Kế hoạch đã xây dựng xong.",
                amount="900.000.000" if stage.kind.value == "budget" else "",
            )
            opened = await submit(
                session,
                plan=PLAN,
                secret=SETTINGS.link_secret_bytes(),
                token=derive_token(SETTINGS.link_secret_bytes(), link.id, 1),
                data=data,
                now=utcnow(),
                link_ttl=TTL,
            )
            await Emails.of(PLAN, SETTINGS, self.renderer).approval_links(
                session, opened.request, opened.cycle, opened.new_assignments
            )
        branch.submitted = True
        assert await self.emails() == [("approval_request", email(branch.approver))]

    def of(self, kind: Kind) -> list[Branch]:
        return [b for b in self.branches if b.kind == kind]

    async def sweep(self) -> Counter:
        """(stage, event) of this cycle's events."""
        events = await sweep_with_emails(self.db, plan=PLAN, settings=SETTINGS, renderer=self.renderer)
        return Counter((e.request.stage, e.kind.value) for e in events if e.cycle.id == self.cycle.id)

    async def emails(self, *, full: bool = False) -> list:
        """(kind, recipient) of every email queued since the last look, sorted; with `full`, the rows."""
        async with self.db.sessions() as session:
            rows = [m for m in (await session.execute(select(OutboxMessage))).scalars() if m.id not in self.seen]
        self.seen |= {m.id for m in rows}
        if full:
            return rows
        return sorted((m.kind, m.recipients[0]["email"]) for m in rows)

    async def request(self, branch: Branch) -> ApprovalRequest:
        async with self.db.sessions() as session:
            return await session.get(ApprovalRequest, branch.request_id)

    async def wakes(self) -> dict[str, str]:
        async with self.db.sessions() as session:
            return {
                w.stage: w.reason
                for w in (await session.execute(select(Wake).where(Wake.cycle_id == self.cycle.id))).scalars()
            }


def reminder_sweeps(kind: Kind, scenario: Scenario, opened: dt.datetime) -> list[dt.date]:
    """The mornings after each reminder falls; reminders that fell before the step opened never do."""
    due = scenario.due(kind)
    return sorted(
        due - dt.timedelta(days=d) + dt.timedelta(days=1)
        for d in kind.reminders
        if at(due - dt.timedelta(days=d), 0) + dt.timedelta(days=1) > opened
    )


def expected_reminders(walk: Walk, kind: Kind) -> list[tuple[str, str]]:
    return [
        ("reminder", email(b.approver)) if b.submitted else ("submission_request", email(b.officer))
        for b in walk.of(kind)
    ]
