"""What `kehoach rehearse` tells at the end of its year and while it runs, in process (the fast
tier; tests/test_rehearse.py runs the whole command): the summary counts what the database holds
of the rehearsed cycle (steps and their rounds, decisions by outcome, reminders, escalations,
overdue notices, lapses, the units that never sent their report, the months' cycles, the issued
report), and the progress names each stage's new status until the report is issued and emailed.
On the test's own database of each backend, a year that lasts seconds."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select, update

from approvals import audit
from approvals.db import utcnow
from approvals.models import ApprovalRequest, Cycle, CycleStage, Decision
from approvals.plan import load_plan
from approvals.report_models import IssuedReport
from approvals.routing import steps
from approvals.statuses import RequestStatus
from flows.cadences import MONTHLY_KIND
from notifications.emails import Emails
from notifications.render import Renderer
from service.rehearsal.command import _until_emailed, _until_issued, print_summary
from service.rehearsal.summary import summarise
from tests.api.conftest import Opened, open_request
from tests.support.paces import Pace
from tests.support.report_document import annual_report, report_document

A_YEAR_IN_A_MINUTE = Pace("a year in a minute", 365 * 86_400 / 60)


async def _rehearsed_year(database, settings) -> tuple[Cycle, list[Opened]]:
    """A rehearsed annual cycle with three units' reports asked of the director, and two months."""
    plan = load_plan(settings.plan_file)
    async with database.transaction() as session:
        cycle = await steps.get_or_create_cycle(session, kind="annual", period="2081", starts_on=dt.date(2081, 1, 15))
        A_YEAR_IN_A_MINUTE.mark(cycle, cycle.starts_on)
        cycle.rehearsal_began = utcnow()
        for number, finished in ((2, utcnow()), (3, None)):
            month = Cycle(kind=MONTHLY_KIND, period=f"2081-{number:02d}", starts_on=dt.date(2081, number, 1))
            month.rehearsal_speed, month.finished_at = cycle.rehearsal_speed, finished
            session.add(month)
    units = plan.branches(plan.stage("annual", "annual_report"), cycle.starts_on)[:3]
    return cycle, [
        await open_request(database, settings, cycle_kind="annual", stage_id="annual_report", subject=u, cycle=cycle)
        for u in units
    ]


def _issued(cycle: Cycle, request_id, number: int) -> IssuedReport:
    return IssuedReport(
        cycle_id=cycle.id,
        request_id=request_id,
        year=2081,
        symbol="BC-SKHCN",
        number=number,
        issued_on=dt.date(2081, 12, 5),
        recipients=[],
        docx=b"PK",
        pdf=b"%PDF",
    )


async def test_the_summary_counts_what_the_database_holds_of_the_rehearsed_year(private_database, settings, capsys):
    cycle, (approved, reminded, silent) = await _rehearsed_year(private_database, settings)
    async with private_database.transaction() as session:
        for opened, outcome in ((approved, "approve"), (reminded, "request_changes")):
            (assignment_id,) = opened.assignments.values()
            session.add(
                Decision(request_id=opened.request_id, assignment_id=assignment_id, official_id="x", outcome=outcome)
            )
        await session.execute(
            update(ApprovalRequest)
            .where(ApprovalRequest.id == approved.request_id)
            .values(status=RequestStatus.approved.value, requested_by="unit_officer")
        )
        await session.execute(
            update(ApprovalRequest)
            .where(ApprovalRequest.id == silent.request_id)
            .values(status=RequestStatus.expired.value, escalated_at=utcnow())
        )
        for action in ("request.reminded", "request.reminded", "request.overdue"):
            await audit.append(
                session,
                actor="system",
                action=action,
                entity="approval_request",
                entity_id=str(reminded.request_id),
                data={},
            )
        session.add(_issued(cycle, approved.request_id, 12))
    async with private_database.sessions() as session:
        summary = await summarise(session, cycle.id)
    assert (summary.steps, summary.rounds, summary.decisions) == (3, 3, {"approve": 1, "request_changes": 1})
    assert (summary.reminders, summary.overdue_notices, summary.escalations, summary.expired) == (2, 1, 1, 1)
    plan = load_plan(settings.plan_file)
    units = plan.branches(plan.stage("annual", "annual_report"), cycle.starts_on)[:3]  # the three opened, in order
    assert summary.silent_units == sorted(units[1:])  # the reminded and the lapsed: never approved
    assert (summary.months, summary.report, summary.emails, summary.send_backs) == ((2, 1), "12/BC-SKHCN", 0, 1)

    print_summary(summary, {"approved": 5, "queue confirmations": 2}, 90)
    out = capsys.readouterr().out
    for line in (
        "Consolidated report:   12/BC-SKHCN",
        "Steps:                 3 (3 rounds with resubmissions)",
        "Decisions:             2 (approved 1, sent back 1, rejected 0)",
        "Monthly cycles:        2 started, 1 finished",
        "Simulated officials:   approved 5, queue confirmations 2",
        "Wall time:             1.5 min",
    ):
        assert line in out, out


async def test_the_progress_names_each_stage_s_new_status_until_the_report_is_issued_and_emailed(
    private_database, settings, capsys
):
    plan = load_plan(settings.plan_file)
    cycle, (first, *_) = await _rehearsed_year(private_database, settings)
    async with private_database.sessions() as session:  # opening the reports' step opened their stage
        where = (CycleStage.cycle_id == cycle.id, CycleStage.stage == "annual_report")
        status = (await session.execute(select(CycleStage.status).where(*where))).scalar_one()
    stop = asyncio.Event()
    watching = asyncio.create_task(_until_issued(private_database, cycle, plan, stop))
    said = ""
    try:
        while f"stage 7. Annual implementation report (before 30 November): {status}" not in said:
            assert not watching.done(), said  # nothing issued: it goes on watching
            await asyncio.sleep(0.05)
            said += capsys.readouterr().err
        async with private_database.transaction() as session:
            session.add(_issued(cycle, first.request_id, 7))
        assert await asyncio.wait_for(watching, 30) == "7/BC-SKHCN"
    finally:
        stop.set()
    said += capsys.readouterr().err
    assert "Rehearsal date: " in said and "/2081" in said, said
    assert "The consolidated report 7/BC-SKHCN is issued" in said and "It is emailed to the PPC" in said, said


async def test_a_report_whose_emails_stay_queued_is_said_so_after_the_patience(private_database, settings, capsys):
    """The dispatcher away: the rehearsal does not wait for ever, it says how many emails wait."""
    cycle, (first, *_) = await _rehearsed_year(private_database, settings)
    plan = load_plan(settings.plan_file)
    async with private_database.transaction() as session:
        session.add(_issued(cycle, first.request_id, 8))
        await session.flush()
        report, written = annual_report(), report_document(number=8)
        await Emails.of(plan, settings, Renderer()).report_issued(
            session, cycle_id=cycle.id, report=report, document=written, files=[]
        )
    await _until_emailed(private_database, asyncio.Event(), patience=0)
    said = capsys.readouterr().err
    assert "of its emails are still queued: see `kehoach status`" in said, said
