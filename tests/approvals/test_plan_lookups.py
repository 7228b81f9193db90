"""A stage, a cycle kind and a role are looked up in one way each (`Plan.stage`, `Plan.cycle`,
`Plan.role`): what the plan no longer has answers None or NotFound, never a StopIteration (which
a coroutine turns into a RuntimeError, a 500)."""

from __future__ import annotations

import pytest

from approvals.config import PACKAGED_PLAN
from approvals.errors import NotFound
from approvals.plan import load_plan
from approvals.routing.steps import StageNotInPlan, stage_of

PLAN = load_plan(PACKAGED_PLAN)


def test_every_stage_of_every_cycle_is_found_by_its_ids():
    found = [(kind.id, stage.id) for kind in PLAN.cycles for stage in kind.stages]
    assert len(found) > 10
    for kind_id, stage_id in found:
        stage = PLAN.stage(kind_id, stage_id)
        assert stage is not None and stage.id == stage_id
        assert stage_of(PLAN, kind_id, stage_id) is stage


def test_a_stage_or_cycle_the_plan_does_not_have_is_none_or_a_dead_link():
    assert PLAN.stage("annual", "no_such_stage") is None
    assert PLAN.stage("no_such_cycle", "annual_report") is None
    with pytest.raises(StageNotInPlan):
        stage_of(PLAN, "annual", "no_such_stage")
    with pytest.raises(NotFound):
        PLAN.cycle("no_such_cycle")
    with pytest.raises(NotFound):
        PLAN.role("no_such_role")
    assert PLAN.cycle("annual").id == "annual" and PLAN.role(PLAN.roles[0].id) is PLAN.roles[0]
