"""A fan-out stage that no unit carries on the day it opens (its units merged away, none named):
nothing is asked and nobody could settle it, so it is recorded as skipped at once, with no
request, instead of failing the run or leaving it waiting for ever; a replay finds it so."""

from __future__ import annotations

import datetime as dt

import yaml
from sqlalchemy import select

from approvals.config import PACKAGED_PLAN
from approvals.models import ApprovalRequest, Cycle, CycleStage
from approvals.plan import load_plan
from flows.stages import open_branches
from notifications.render import Renderer

YEAR = 2098


def _plan_whose_outlets_merged_away(folder):
    """The shipped plan with the outlets' step carried only by the district culture centres,
    which the 2025 reform dissolved on 30 June 2025."""
    text = yaml.safe_load(PACKAGED_PLAN.read_text(encoding="utf-8"))
    (stage,) = [s for c in text["cycles"] for s in c["stages"] if s["id"] == "outlet_plans"]
    stage["acting_agencies"] = []
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(text, allow_unicode=True), encoding="utf-8")
    return load_plan(path)


async def test_a_fan_out_no_unit_carries_on_the_day_is_skipped_with_nothing_asked(database, settings, tmp_path):
    plan = _plan_whose_outlets_merged_away(tmp_path)
    stage = next(s for s in plan.cycle("annual").stages if s.id == "outlet_plans")
    assert plan.branches(stage, dt.date.today()) == []
    key = dict(cycle_kind="annual", period=str(YEAR), starts_on=dt.date(YEAR, 1, 15), stage_id="outlet_plans")
    for _ in range(2):  # the run, then a replay
        opened = await open_branches(
            database, plan=plan, settings=settings, renderer=Renderer(), waiter_ref=None, **key
        )
        assert opened == 0
    async with database.sessions() as session:
        cycle_id = (
            await session.execute(select(Cycle.id).where(Cycle.kind == "annual", Cycle.period == str(YEAR)))
        ).scalar_one()
        row = (
            await session.execute(
                select(CycleStage).where(CycleStage.cycle_id == cycle_id, CycleStage.stage == "outlet_plans")
            )
        ).scalar_one()
        asked = (await session.execute(select(ApprovalRequest.id).where(ApprovalRequest.cycle_id == cycle_id))).all()
    assert (row.status, row.branches, row.opened_at is not None, asked) == ("skipped", 0, True, [])
