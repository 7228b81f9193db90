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
from collections import Counter

import pytest
import time_machine
from sqlalchemy import select

from approvals.clock import deadlines
from approvals.db import utcnow
from approvals.models import AuditEvent, Cycle, CycleStage
from approvals.routing import stages, steps
from approvals.statuses import StageStatus
from notifications.models import OutboxMessage
from tests.flows.sweep_walk import (
    LATE,
    PLAN,
    SCENARIOS,
    STAGES,
    Kind,
    Walk,
    at,
    email,
    expected_reminders,
    reminder_sweeps,
)


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
