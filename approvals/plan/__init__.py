"""The plan as data: load, validate and query the plan file."""

from approvals.plan.loader import PlanError, PlanProblem, load_plan, parse_plan
from approvals.plan.people import Agency, Official
from approvals.plan.schema import Plan
from approvals.plan.stages import CycleKind, Stage

__all__ = ["Agency", "CycleKind", "Official", "Plan", "PlanError", "PlanProblem", "Stage", "load_plan", "parse_plan"]
