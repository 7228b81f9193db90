"""A cycle never stops silently, nor waits forever. A cycle whose run dies in the middle of a stage: the cycle shows as
needing attention (dashboard and API), the coordinators get one alert, and `kehoach cycle
resume` starts a run that goes on from the database: the branches the dead run had opened are
not asked again, the others are, and the chain finishes. On real parts: the worker (and the
flow run it started) is killed with SIGKILL while the annual report's ~90 branches open."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
from sqlalchemy import select, text

from approvals.models import ApprovalRequest, AuditEvent, Cycle
from tests.support import local_http
from tests.support.officials import (
    ASK,
    ORIENTATION,
    SUBMIT,
    Inbox,
    address,
    approve,
    consolidate,
    orient,
    report_every_unit,
    reporters,
    rows,
    submit,
    through_the_budget,
)

pytestmark = pytest.mark.e2e


def _opened(stack, year: int) -> int:
    with stack.reading() as conn:
        return conn.execute(
            text(
                "SELECT COUNT(*) FROM approval_request r JOIN cycle c ON c.id = r.cycle_id WHERE c.kind = 'annual' "
                "AND c.period = :p AND r.stage = 'annual_report'"
            ),
            {"p": str(year)},
        ).scalar_one()


def _alerts(stack, year: int) -> list:
    return [r for r in stack.smtp.received if "[Needs attention]" in r.subject and str(year) in r.subject]


def test_a_run_killed_mid_stage_is_shown_alerted_and_resumed_with_nothing_asked_twice(stack):
    year = stack.past_year(3)
    run_id = stack.start_cycle(year)
    inbox = Inbox(stack, year)
    units = reporters()
    through_the_budget(inbox)

    # The last budget decision wakes the run; it opens the annual report, a batch of branches
    # per transaction. Once the first batch is in, the run's own process is killed with SIGKILL
    # (found beforehand: one signal, at once), and the worker with it.
    deadline, engine = time.monotonic() + 120, None
    while _opened(stack, year) == 0:
        assert time.monotonic() < deadline, "the annual report never began to open"
        engine = engine or stack.flow_run_process()
    with contextlib.suppress(ProcessLookupError, TypeError):  # it may have just ended: the worker's tree goes too
        os.kill(engine or stack.flow_run_process(), signal.SIGKILL)
    stack.kill("worker")
    try:  # the module's stack gets its worker back whatever happens here: the next tests need it
        opened = _opened(stack, year)
        (marked,) = rows(
            stack,
            year,
            "SELECT s.opened_at FROM cycle_stage s JOIN cycle c ON c.id = s.cycle_id "
            "WHERE c.period = :p AND c.kind = 'annual' AND s.stage = 'annual_report'",
        )
        assert 0 < opened <= len(units) and marked[0] is None  # killed before the stage was fully opened

        # Noticed: the run went silent while working. One alert, and the API shows why.
        deadline = time.monotonic() + 90
        while not _alerts(stack, year):
            assert time.monotonic() < deadline, "no alert for the dead run"
            time.sleep(0.5)
        token = stack.api_token()
        (cycle,) = [
            c
            for c in local_http.get(
                f"{stack.base_url}/api/v1/cycles", params={"year": year}, headers={"Authorization": f"Bearer {token}"}
            ).json()
            if c["kind"] == "annual"
        ]
        assert (cycle["attention"], cycle["run_id"]) == ("run_crashed", str(run_id))
        assert stack.run_state(run_id).name == "Crashed"  # Prefect agrees
        dashboard = local_http.get(f"{stack.base_url}/?lang=en", headers={"Authorization": f"Bearer {token}"}).text
        assert "Cycles that stopped and need a restart" in dashboard and "Resume the cycle" in dashboard
    finally:
        stack.respawn("worker")

    resumed = stack.kehoach("cycle", "resume", f"annual/{year}")
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert f"replaces {run_id}" in resumed.stdout

    # The new run opens the rest; every unit is asked once, then reports; the consolidated report
    # is approved, and the chain ends.
    report_every_unit(inbox)
    consolidate(inbox)
    deadline = time.monotonic() + 180
    while True:
        (status,) = rows(
            stack,
            year,
            "SELECT status FROM cycle_stage s JOIN cycle c ON c.id = s.cycle_id "
            "WHERE c.period = :p AND c.kind = 'annual' AND s.stage = 'annual_report'",
        )[0]
        finished = rows(
            stack, year, "SELECT finished_at, attention, restarts FROM cycle WHERE period = :p AND kind = 'annual'"
        )[0]
        if finished[0] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == "done" and finished[0] is not None and finished[1:] == (None, 1)
    asked = sorted(
        a
        for r in stack.smtp.received
        if str(year) in r.subject and SUBMIT in r.subject and "7. " in r.subject
        for a in r.envelope_to
    )
    assert asked == sorted(address(officer) for officer in units.values())  # nobody asked twice
    ids = [r.message["Message-ID"] for r in stack.smtp.received if str(year) in r.subject]
    assert len(ids) == len(set(ids))
    assert len(_alerts(stack, year)) == 1


def test_a_board_that_gives_nothing_by_its_due_time_does_not_hold_the_year(stack):
    """Stage 2 (the Propaganda Board is requested, never ordered) has nobody to escalate to:
    at its due time the sweep records that the chain goes on without it, the run opens the
    materials at once, and the outlets are shown that the Board gave nothing in time."""
    year = stack.past_year(7)
    run_id = stack.start_cycle(year)
    inbox = Inbox(stack, year)
    orient(inbox)
    inbox.link("propaganda_head", SUBMIT, "2. ")  # requested; the Board says nothing
    stack.wait_for_state(run_id, {"Suspended"})
    with stack.sandbox.engine.begin() as conn:  # its due time passes
        conn.execute(
            text(
                "UPDATE approval_request SET due_at = :past WHERE stage = 'propaganda_guidance' AND "
                "cycle_id = (SELECT id FROM cycle WHERE kind = 'annual' AND period = :p)"
            ),
            {"past": "2000-01-01 00:00:00+00:00", "p": str(year)},
        )
    sweep = stack.start_run("sweep/sweep", {})
    stack.wait_for_state(sweep, {"Completed"})

    materials = inbox.link("dof_planning_officer", SUBMIT, "3. ")  # the chain went on: materials are asked for
    stages = dict(
        rows(
            stack,
            year,
            "SELECT s.stage, s.status FROM cycle_stage s JOIN cycle c ON c.id = s.cycle_id "
            "WHERE c.period = :p AND c.kind = 'annual'",
        )
    )
    assert stages["propaganda_guidance"] == "lapsed" and stages["dic_direction"] == "done"
    with stack.reading() as conn:
        request_id = conn.execute(
            select(ApprovalRequest.id)
            .join(Cycle, Cycle.id == ApprovalRequest.cycle_id)
            .where(Cycle.kind == "annual", Cycle.period == str(year), ApprovalRequest.stage == "propaganda_guidance")
        ).scalar_one()
        why = (
            conn.execute(
                select(AuditEvent.data).where(
                    AuditEvent.entity_id == str(request_id), AuditEvent.action == "request.expired"
                )
            )
            .scalars()
            .all()
        )
    assert len(why) == 1 and "the chain goes on" in why[0]["reason"]

    # The outlets get the orientation alone, and are told the Board gave nothing in time.
    submit(materials, text="Tài liệu năm")
    approve(inbox.link("dof_director", ASK, "3. "))
    link = inbox.link("portal_editor", SUBMIT, "4. ")
    email = next(r for r in stack.smtp.received if link in r.text)
    form = local_http.get(link).text
    for shown in (email.text, form):
        assert ORIENTATION["field_themes"] in shown
        assert "2. Ban Tuyên giáo cho ý kiến định hướng nội dung" in shown
        assert "Không nhận được trong hạn; Kế hoạch tiếp tục mà không có nội dung này." in shown


def test_a_cancelled_cycle_stops_where_it_is(stack):
    year = stack.year(7)
    run_id = stack.start_cycle(year)
    inbox = Inbox(stack, year)
    orient(inbox)
    guidance = inbox.link("propaganda_head", SUBMIT, "2. ")
    stack.wait_for_state(run_id, {"Suspended"})

    token = stack.api_token()
    (cycle_id,) = [
        c["id"]
        for c in local_http.get(
            f"{stack.base_url}/api/v1/cycles", params={"year": year}, headers={"Authorization": f"Bearer {token}"}
        ).json()
        if c["kind"] == "annual" and c["period"] == str(year)
    ]
    cancelled = local_http.post(
        f"{stack.base_url}/api/v1/cycles/{cycle_id}/cancel",
        headers={"Authorization": f"Bearer {token}"},
        json={"reason": "Điều chỉnh kế hoạch"},
    )
    assert cancelled.status_code == 200, cancelled.text

    stack.wait_for_state(run_id, {"Completed"})  # the run learns it on resume and opens nothing more
    assert local_http.get(guidance).status_code == 404  # the open link closed with the cycle
    stages = dict(
        rows(
            stack,
            year,
            "SELECT s.stage, s.status FROM cycle_stage s JOIN cycle c ON c.id = s.cycle_id WHERE c.period = :p",
        )
    )
    assert stages == {"dic_direction": "done", "propaganda_guidance": "expired"}
