"""The deployments' schedules come from the plan (a yearly cycle on its starts_on day, a monthly
one on the 1st, none for per-event cycles) in the plan's time zone, not from constants."""

from __future__ import annotations

from approvals.config import PACKAGED_PLAN, Settings
from approvals.plan import load_plan
from flows.serve import DEPLOYMENTS, deployments, schedules

PLAN = load_plan(PACKAGED_PLAN)


def _crons(plan, kind):
    return [(s.cron, s.timezone) for s in schedules(plan, kind)]


def test_each_deployment_is_scheduled_as_the_plan_says():
    assert _crons(PLAN, "annual") == [("0 8 15 1 *", "Asia/Ho_Chi_Minh")]  # starts_on "01-15"
    assert _crons(PLAN, "culture_society_monthly") == [("0 8 1 * *", "Asia/Ho_Chi_Minh")]
    assert _crons(PLAN, "economy_event") == [] and _crons(PLAN, "problem_escalation") == []
    assert _crons(PLAN, None) == [("*/15 * * * *", "Asia/Ho_Chi_Minh")]  # the sweep
    assert schedules(PLAN, None, sweep="") == []  # configured off
    assert {kind for _, kind in DEPLOYMENTS.values()} == {c.id for c in PLAN.cycles} | {None}


def test_a_plan_that_starts_its_year_elsewhere_moves_the_schedule():
    annual = PLAN.cycle("annual").model_copy(update={"starts_on": "03-01"})
    moved = PLAN.model_copy(
        update={
            "cycles": [annual, *[c for c in PLAN.cycles if c.id != "annual"]],
            "plan": PLAN.plan.model_copy(update={"timezone": "Asia/Bangkok"}),
        }
    )
    assert _crons(moved, "annual") == [("0 8 1 3 *", "Asia/Bangkok")]
    assert _crons(moved, None) == [("*/15 * * * *", "Asia/Bangkok")]


def test_a_worker_with_schedules_off_starts_nothing_by_the_calendar(tmp_path):
    """A rehearsal's worker: its cycles start on the rehearsal's compressed calendar, never on the
    wall's (a real month's cycle would mix into the rehearsal's database)."""
    on = deployments(Settings(data_dir=tmp_path), PLAN)
    off = deployments(Settings(data_dir=tmp_path, schedules=False), PLAN)
    assert sum(len(d.schedules) for d in on) == 3  # the year, the month, the sweep
    assert [d.name for d in off] == [d.name for d in on] and all(d.schedules == [] for d in off)
