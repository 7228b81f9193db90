"""The sweep on every kind of stage the shipped plan's annual cycle has (submission, a
submission the chain goes on without, fan-out, budget, report; the consolidation stage is in
test_consolidation_sweep.py), on the real plan at its real size, with the
clock moved by time-machine, for a cycle started on time, one started late keeping the
plan's dates, one started late with its dates shifted from today, and a rehearsal: the same
cycle with its year compressed into 30 minutes of wall clock, where every reminder, due time,
escalation grace and opening falls on the cycle's compressed days.

Every branch is opened as the cycle's run opens it, one branch of each stage that starts with a
submission is submitted at once, and the clock walks through every reminder, the due time
and the escalation's grace. At each step the test checks which events the sweep produced for
each stage and every email it queued (kind and recipient, nothing more, nothing less); a
second sweep at the same moment does nothing. A stage's superior hears of its overdue
branches in one email, however many units have not submitted."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from approvals import deadlines, stages, steps
from approvals.config import PACKAGED_PLAN, Settings
from approvals.db import Database, utcnow
from approvals.models import ApprovalRequest, AuditEvent, Cycle, CycleStage, SubmissionLink, Wake
from approvals.plan import load_plan
from approvals.statuses import StageStatus
from approvals.submitting import parse_submission, submit
from approvals.tokens import derive_token
from flows.stages import open_branch
from flows.sweep import sweep_with_emails
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.render import Renderer
from tests.support.paces import AS_PLANNED, REHEARSED, Pace

SETTINGS = Settings(link_secret="e" * 48)
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


def test_the_scenarios_dates_are_what_the_calendar_says():
    """The expected dates are worked out by hand here, not by the code under test."""
    late, shifted = SCENARIOS[1], SCENARIOS[2]
    assert [shifted.due(k) for k in STAGES] == [
        dt.date(2026, 12, 15),
        dt.date(2026, 12, 29),
        dt.date(2027, 1, 30),
        dt.date(2027, 2, 14),
        dt.date(2027, 3, 1),
        dt.date(2027, 10, 15),
    ]
    assert {late.due(k) for k in STAGES} == {dt.date(2026, 12, 8)}
    assert shifted.report_opens() == dt.date(2027, 8, 17) and late.report_opens() == LATE
    assert [steps.stage_of(PLAN, "annual", k.stage).kind.value for k in STAGES] == [k.kind for k in STAGES]


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


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_every_stage_kind_is_reminded_escalated_told_and_expired_on_its_own_dates(private_database, scenario):
    walk = Walk(private_database, scenario)
    report = STAGES[-1]
    opening = at(scenario.opened, 9)
    with time_machine.travel(scenario.wall(opening), tick=False):
        await walk.start()
        for kind in STAGES[:-1]:
            await walk.open(kind)
        report_now = scenario.report_opens() == scenario.opened
        if not report_now:  # the report waits for its own date, as the run's schedule-stage records it
            async with private_database.transaction() as session:
                cycle = await session.get(Cycle, walk.cycle.id)
                await stages.set_stage_status(
                    session, cycle_id=cycle.id, stage=report.stage, status=StageStatus.scheduled, now=utcnow()
                )
                row = await stages.lock_stage(session, cycle.id, report.stage)
                row.opens_at = deadlines.planned_opening(PLAN, steps.stage_of(PLAN, "annual", report.stage), cycle)
            assert abs(row.opens_at - scenario.wall(at(scenario.report_opens(), 0))) <= dt.timedelta(microseconds=1)
        else:
            await walk.open(report)
        assert await walk.sweep() == Counter() and await walk.emails() == []  # nothing is due the moment it opens

    # Every moment something falls due, in order: (day of the sweep, hour, what happens).
    timeline: list[tuple[dt.date, int, str, Kind]] = []
    for kind in STAGES:
        opened = at(scenario.report_opens(), 9) if kind is report else opening
        timeline += [(day, 8, "reminder", kind) for day in reminder_sweeps(kind, scenario, opened)]
        timeline.append((scenario.due(kind) + dt.timedelta(days=1), 8, "due", kind))
        timeline.append((scenario.due(kind) + dt.timedelta(days=8), 8, "grace", kind))  # 7 days after escalating
    if not report_now:
        timeline.append((scenario.report_opens() - dt.timedelta(days=1), 20, "eve", report))
        timeline.append((scenario.report_opens(), 9, "opens", report))
    timeline.sort(key=lambda item: (item[0], item[1]))
    assert (
        sum(1 for *_, what, _ in timeline if what == "reminder")
        == {"on_time": 13, "kept_late": 10, "shifted": 13, "rehearsed": 13}[scenario.name]
    )  # kept late: reminders before opening skip

    for index, (day, hour) in enumerate(sorted({(d, h) for d, h, *_ in timeline}), start=1):
        now = at(day, hour)
        happening = [(what, kind) for d, h, what, kind in timeline if (d, h) == (day, hour)]
        with time_machine.travel(scenario.sweep_at(now, index), tick=False):
            if ("opens", report) in happening:  # the sweep wakes the run on the day, and the run opens it
                assert await walk.sweep() == Counter() and await walk.emails() == []
                assert (await walk.wakes()).get(report.stage) == "stage_opens"
                await walk.open(report)
            events, emails = Counter(), []
            for what, kind in happening:
                if what in ("opens", "eve"):
                    continue
                branches = walk.of(kind)
                if what == "reminder":
                    events[(kind.stage, "reminder")] += len(branches)
                    emails += expected_reminders(walk, kind)
                elif what == "due":
                    emails += await due_expectations(walk, kind, events)
                elif what == "grace":
                    emails += await grace_expectations(walk, kind, events)
            swept = await walk.sweep()
            queued = await walk.emails(full=True)
            assert swept == events, (now, happening)
            assert sorted((m.kind, m.recipients[0]["email"]) for m in queued) == sorted(emails), (now, happening)
            await check_digests(walk, queued, happening)
            assert await walk.sweep() == Counter() and await walk.emails() == []  # once only
            if any(what == "eve" for what, _ in happening):
                assert report.stage not in await walk.wakes()  # not a day early

    # A stage whose every branch ended by time alone wakes the run; a stage with a unit that never
    # submitted stays open (its superior was told) and wakes nothing.
    wakes = await walk.wakes()
    for kind in STAGES[:-1]:
        # A stage the chain goes on without settles at its due time whether or not anything came.
        settled = kind.at_due == "proceed" or all(b.submitted for b in walk.of(kind))
        assert wakes.get(kind.stage) == ("stage_settled" if settled else None), kind.stage
    assert {k.stage for k in STAGES[:-1] if k.stage not in wakes} == (
        {"dic_direction", "materials", "outlet_plans", "finance_allocation"}
        if scenario.name == "kept_late"
        else {"outlet_plans"}
    )
    assert wakes.get(report.stage) == (None if report_now else "stage_opens")
    async with private_database.sessions() as session:
        statuses = {
            row.stage: row.status
            for row in (await session.execute(select(CycleStage).where(CycleStage.cycle_id == walk.cycle.id))).scalars()
        }
    assert statuses["propaganda_guidance"] == "lapsed"
    assert statuses["dic_direction"] == ("waiting" if scenario.name == "kept_late" else "expired")
    for kind in [STAGES[0], *STAGES[2:]]:
        for branch in walk.of(kind):
            request = await walk.request(branch)
            assert request.status == ("expired" if branch.submitted else "awaiting_submission"), branch
            assert request.told_at is not None


async def due_expectations(walk: Walk, kind: Kind, events: Counter) -> list[tuple[str, str]]:
    branches = walk.of(kind)
    if kind.at_due == "proceed":  # nothing acknowledged from the Board: the chain goes on without it
        (branch,) = branches
        events[(kind.stage, "expired")] += 1
        if not branch.submitted:  # it gave nothing: nobody was asked to decide, nobody is told
            return []
        return [("outcome", email(branch.officer)), ("step_closed", email(branch.approver))]
    emails = []
    submitted = [b for b in branches if b.submitted]
    waiting = [b for b in branches if not b.submitted]
    if submitted:  # decided by nobody in time: the superior is asked too
        events[(kind.stage, "escalation")] += len(submitted)
        emails += [("escalation", email(kind.superior))] * len(submitted)
    if waiting:  # units that never submitted: overdue, and the superior hears of them all in one email
        events[(kind.stage, "overdue")] += len(waiting)
        emails.append(("submission_overdue", email(kind.superior)))
    return emails


async def grace_expectations(walk: Walk, kind: Kind, events: Counter) -> list[tuple[str, str]]:
    if kind.at_due == "proceed":
        return []
    emails = []
    for branch in walk.of(kind):
        if branch.submitted:  # escalated 7 days ago and still undecided: it expires, never approved
            events[(kind.stage, "expired")] += 1
            emails += [
                ("outcome", email(branch.officer)),
                ("step_closed", email(branch.approver)),
                ("step_closed", email(kind.superior)),
            ]
    return emails


async def check_digests(walk: Walk, queued: list[OutboxMessage], happening) -> None:
    """Each overdue email names every unit of its stage that has not submitted, and who was asked."""
    for what, kind in happening:
        if what != "due" or kind.at_due == "proceed":
            continue
        waiting = [b for b in walk.of(kind) if not b.submitted]
        digests = [
            m
            for m in queued
            if m.kind == "submission_overdue"
            and m.recipients[0]["email"] == email(kind.superior)
            and f":{kind.stage}:" in m.idempotency_key
        ]
        assert len(digests) == (1 if waiting else 0), kind.stage
        if not waiting:
            continue
        (digest,) = digests
        stage = steps.stage_of(PLAN, "annual", kind.stage)
        assert f"{stage.number}. " in digest.subject and f": {len(waiting)} đơn vị" in digest.subject
        for branch in waiting:
            unit = PLAN.agency((await walk.request(branch)).acting_agency).name.vi
            assert unit in digest.text_body and unit in digest.html_body, unit
            assert PLAN.official(branch.officer).name in digest.text_body


@pytest.mark.parametrize("kind", STAGES[2:], ids=[k.kind for k in STAGES[2:]])
async def test_a_unit_that_submits_after_being_reported_overdue_gives_its_approvers_the_plans_notice(
    private_database, kind
):
    """Every stage that starts with a submission, at its real size: nothing came by the due time
    (8 December, kept late) and the superior was told of every branch. One unit submits two days
    later: its approver is asked with 7 days' notice (due 17 December), reminded on the reminders
    still ahead, and the step then escalates and expires like any other; it does not wait
    forever with its old overdue mark. The other branches stay as they were."""
    walk = Walk(private_database, SCENARIOS[1])
    with time_machine.travel(at(LATE, 9), tick=False):
        await walk.start()
        await walk.open(kind, submit_first=False)
    branches = walk.of(kind)
    branch = branches[0]
    with time_machine.travel(at(dt.date(2026, 12, 9), 8), tick=False):
        assert await walk.sweep() == Counter({(kind.stage, "overdue"): len(branches)})
        assert await walk.emails() == [("submission_overdue", email(kind.superior))]
    submitted_at = at(dt.date(2026, 12, 10), 10)
    new_due = dt.date(2026, 12, 17)
    ahead = sorted(
        new_due - dt.timedelta(days=d)
        for d in kind.reminders
        if at(new_due - dt.timedelta(days=d), 0) + dt.timedelta(days=1) > submitted_at
    )
    with time_machine.travel(submitted_at, tick=False):
        await walk.submit(branch)
        request = await walk.request(branch)
        assert request.due_at == at(new_due, 0) + dt.timedelta(days=1, microseconds=-1)
        assert (request.escalated_at, request.told_at) == (None, None)
        assert request.reminders_sent == len(kind.reminders) - len(ahead)  # those already past are not sent
        assert await walk.sweep() == Counter() and await walk.emails() == []
    assert ahead  # every kind has a reminder still ahead
    for day in ahead:
        with time_machine.travel(at(day + dt.timedelta(days=1), 8), tick=False):
            assert await walk.sweep() == Counter({(kind.stage, "reminder"): 1})
            assert await walk.emails() == [("reminder", email(branch.approver))]
    with time_machine.travel(at(dt.date(2026, 12, 18), 8), tick=False):
        assert await walk.sweep() == Counter({(kind.stage, "escalation"): 1})
        assert await walk.emails() == [("escalation", email(kind.superior))]
    with time_machine.travel(at(dt.date(2026, 12, 25), 8), tick=False):
        assert await walk.sweep() == Counter({(kind.stage, "expired"): 1})
        assert await walk.emails() == sorted(
            [
                ("outcome", email(branch.officer)),
                ("step_closed", email(branch.approver)),
                ("step_closed", email(kind.superior)),
            ]
        )
        for other in branches[1:]:  # still waiting for their units, told once, nothing more
            request = await walk.request(other)
            assert request.status == "awaiting_submission" and request.told_at is not None
    async with private_database.sessions() as session:
        submitted = (
            await session.execute(
                select(AuditEvent.data).where(
                    AuditEvent.entity_id == str(branch.request_id), AuditEvent.action == "request.submitted"
                )
            )
        ).scalar_one()
    assert submitted["late"] is True and submitted["due_at"].startswith("2026-12-17T16:59:59")
