"""The time zone has one source, the plan's `plan.timezone`: due times, local days, the times
shown in emails and pages and the coordinators of the day all follow it, and the settings have
no time zone of their own to drift from it."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from approvals.clock.deadlines import local_day, planned_due
from approvals.config import PACKAGED_PLAN, Settings
from approvals.i18n import local_time
from approvals.plan import load_plan
from approvals.wording.presentation import step_context

PLAN = load_plan(PACKAGED_PLAN)
TOKYO = PLAN.model_copy(update={"plan": PLAN.plan.model_copy(update={"timezone": "Asia/Tokyo"})})


def _report_stage(plan):
    return next(s for s in plan.cycle("annual").stages if s.id == "annual_report")


def test_the_packaged_plan_runs_on_vietnam_time_and_the_settings_have_no_zone():
    assert PLAN.tz == ZoneInfo("Asia/Ho_Chi_Minh")
    assert not any("zone" in name for name in Settings.model_fields)


def test_a_due_time_is_the_end_of_the_day_in_the_plans_zone():
    cycle = SimpleNamespace(starts_on=dt.date(2026, 1, 15), shift_days=0, rehearsal_speed=None, rehearsal_began=None)
    hanoi, tokyo = planned_due(PLAN, _report_stage(PLAN), cycle), planned_due(TOKYO, _report_stage(TOKYO), cycle)
    assert hanoi - tokyo == dt.timedelta(hours=2)  # the same local end of day, two hours apart
    assert hanoi.astimezone(PLAN.tz).date() == tokyo.astimezone(TOKYO.tz).date()


def test_a_local_day_and_a_shown_time_follow_the_plans_zone():
    moment = dt.datetime(2026, 11, 29, 15, 30, tzinfo=dt.UTC)  # 22:30 in Hà Nội, 00:30 next day in Tokyo
    assert local_day(PLAN, moment) == dt.date(2026, 11, 29)
    assert local_day(TOKYO, moment) == dt.date(2026, 11, 30)
    assert local_time(moment, PLAN.tz, "vi") == "22:30 ngày 29/11/2026 (giờ Việt Nam)"
    assert local_time(moment, PLAN.tz, "en") == "29 Nov 2026, 22:30 (Vietnam time)"
    assert local_time(moment, TOKYO.tz, "en") == "30 Nov 2026, 00:30 (Asia/Tokyo)"


def test_a_steps_due_time_is_shown_in_the_plans_zone():
    stage = _report_stage(PLAN)
    request = SimpleNamespace(stage=stage.id, acting_agency="dost", due_at=dt.datetime(2026, 11, 29, 10, tzinfo=dt.UTC))
    cycle = SimpleNamespace(
        kind="annual",
        period="2026",
        starts_on=dt.date(2026, 1, 15),
        shift_days=0,
        rehearsal_speed=None,
        rehearsal_began=None,
    )
    assert step_context(PLAN, request, cycle, language="vi")["due"] == "17:00 ngày 29/11/2026 (giờ Việt Nam)"
    assert step_context(TOKYO, request, cycle, language="vi")["due"] == "19:00 ngày 29/11/2026 (Asia/Tokyo)"
