"""The plan as data: load, validate and query the plan file."""

from approvals.plan.loader import PlanError, PlanProblem, load_plan, parse_plan
from approvals.plan.schema import Agency, CycleKind, Official, Plan, Stage

__all__ = ["Agency", "CycleKind", "Official", "Plan", "PlanError", "PlanProblem", "Stage", "load_plan", "parse_plan"]
