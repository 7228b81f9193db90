"""`kehoach start` for a year whose dates have passed: it lists them and asks the operator to
shift them from today or keep them (no terminal: it refuses and says how to choose), and the
choice goes in the audit log; shifted, every deadline lies ahead; kept, a step is still due no
sooner than the plan's minimum notice. A newcomer's `kehoach demo` on 1 December shifts."""

from __future__ import annotations

import datetime as dt
import os
import pty
import subprocess
import time
import uuid
from select import select as readable

import pytest
import time_machine
from sqlalchemy import select, text

from approvals.config import PACKAGED_PLAN
from approvals.plan import load_plan
from approvals.running.cycles import calendar, late_by
from tests.support.stack import KEHOACH

pytestmark = pytest.mark.e2e
PLAN = load_plan(PACKAGED_PLAN)


def _in_a_terminal(stack, *args: str, answer: str) -> str:
    """Run `kehoach ARGS` on a pseudo-terminal, answer its question, return all it printed."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [KEHOACH, *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=stack.env,
        cwd=stack.workdir,
        start_new_session=True,
    )
    os.close(slave)
    out, answered, deadline = b"", False, time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = readable([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the command ended and closed the terminal
                    break
                out += chunk
                if not answered and b"keep the plan's dates (k)" in out:
                    os.write(master, answer.encode() + b"\n")
                    answered = True
            elif process.poll() is not None:
                break
        assert process.wait(timeout=60) == 0, out.decode(errors="replace")
    finally:
        os.close(master)
    return out.decode(errors="replace")


def _cycle(stack, year: int):
    with stack.reading() as conn:
        return conn.execute(
            text("SELECT id, shift_days FROM cycle WHERE kind = 'annual' AND period = :p"), {"p": str(year)}
        ).first()


def _scheduled(stack, cycle_id) -> list:
    with stack.reading() as conn:
        return [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT data FROM audit_event WHERE entity = 'cycle' AND entity_id = :c "
                    "AND action = 'cycle.scheduled'"
                ),
                {"c": str(uuid.UUID(str(cycle_id)))},
            )
        ]  # SQLite gives the id without its dashes


def _first_due(stack, year: int) -> dt.datetime:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with stack.reading() as conn:
            due = conn.execute(
                text(
                    "SELECT r.due_at FROM approval_request r JOIN cycle c ON c.id = r.cycle_id "
                    "WHERE c.kind = 'annual' AND c.period = :p AND r.stage = 'dic_direction'"
                ),
                {"p": str(year)},
            ).scalar()
        if due is not None:
            return (
                due
                if isinstance(due, dt.datetime) and due.tzinfo
                else dt.datetime.fromisoformat(str(due)).replace(tzinfo=dt.UTC)
            )
        time.sleep(0.5)
    raise AssertionError("stage 1 never opened")


def test_without_a_terminal_a_late_start_is_refused_and_says_how_to_choose(stack):
    year = stack.past_year(4)
    refused = stack.kehoach("start", "--year", str(year))
    assert refused.returncode == 2
    assert "--late shift" in refused.stderr and "--late keep" in refused.stderr
    assert f"annual/{year} should have started on 15/01/{year}" in refused.stdout
    assert "1. Định hướng truyền thông của năm" in refused.stdout and f"/{year}" in refused.stdout
    assert _cycle(stack, year) is None  # nothing recorded, nothing started


def test_the_operator_shifts_a_late_year_from_today_and_every_deadline_lies_ahead(stack):
    year = stack.past_year(5)
    output = _in_a_terminal(stack, "start", "--year", str(year), answer="s")
    days = late_by(dt.date(year, 1, 15), dt.datetime.now(stack_tz()).date())
    assert f"Dates of annual/{year} shifted by {days} days" in output
    cycle_id, shift = _cycle(stack, year)
    assert shift == days
    (recorded,) = _scheduled(stack, cycle_id)
    recorded = recorded if isinstance(recorded, dict) else __import__("json").loads(recorded)
    assert recorded["choice"] == "shift" and recorded["shift_days"] == days and recorded["passed"]
    now = dt.datetime.now(dt.UTC)
    assert all(d.at > now for d in calendar(PLAN, "annual", dt.date(year, 1, 15), shift_days=shift))
    assert _first_due(stack, year) > now + dt.timedelta(days=7)  # 14 days after the start, moved to today


def test_the_operator_keeps_a_late_years_dates_and_steps_still_get_their_notice(stack):
    year = stack.past_year(6)
    assert "Dates of annual/" in (kept := stack.kehoach("start", "--year", str(year), "--late", "keep")).stdout, (
        kept.stderr
    )
    cycle_id, shift = _cycle(stack, year)
    assert shift == 0 and _scheduled(stack, cycle_id)
    due = _first_due(stack, year)
    now = dt.datetime.now(dt.UTC)
    assert (
        now + dt.timedelta(days=PLAN.plan.min_notice_days - 1)
        < due
        <= now + dt.timedelta(days=PLAN.plan.min_notice_days + 1)
    )  # not escalated the moment it opens


def stack_tz():
    from zoneinfo import ZoneInfo

    return ZoneInfo(PLAN.plan.timezone)


@time_machine.travel(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=7))), tick=False)
async def test_on_1_december_the_demo_shifts_its_year_so_that_every_deadline_lies_ahead(database, sandbox, tmp_path):
    """What `kehoach demo` does for this year's cycle on 1 December (its end-to-end test runs it
    on the real clock): the year is 320 days late, every date is moved past today, and the
    choice is in the audit log."""
    from approvals.config import Settings
    from approvals.models import AuditEvent, Cycle
    from service.demo import dates_ahead

    settings = Settings(database_url=sandbox.url, data_dir=tmp_path, link_secret="d" * 48)
    starts_on = dt.date(2026, 1, 15)
    now = dt.datetime.now(dt.UTC)
    assert [d for d in calendar(PLAN, "annual", starts_on) if d.at <= now]  # as planned, the year is over
    assert await dates_ahead(database, settings, 2026) == 320
    async with database.sessions() as session:
        cycle = (
            await session.execute(select(Cycle).where(Cycle.kind == "annual", Cycle.period == "2026"))
        ).scalar_one()
        actions = (
            (await session.execute(select(AuditEvent.action).where(AuditEvent.entity_id == str(cycle.id))))
            .scalars()
            .all()
        )
    assert cycle.shift_days == 320 and "cycle.scheduled" in actions
    assert all(d.at > now for d in calendar(PLAN, "annual", starts_on, shift_days=cycle.shift_days))
