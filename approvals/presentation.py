"""What a person is shown about a step, in their language: used by emails and pages alike."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from approvals.i18n import local_time
from approvals.models import ApprovalRequest, Cycle
from approvals.plan.schema import Official, Plan
from approvals.requests import stage_of


def step_context(plan: Plan, request: ApprovalRequest, cycle: Cycle, *, language: str, tz: ZoneInfo) -> dict[str, str]:
    stage = stage_of(plan, cycle.kind, request.stage)
    kind = plan.cycle(cycle.kind)
    return {
        "cycle": f"{kind.name.get(language)} {cycle.period}",
        "stage": f"{stage.number}. {stage.name.get(language)}",
        "agency": plan.agency(request.acting_agency).name.get(language),
        "due": local_time(request.due_at, tz, language),
        "summary": stage.summary.get(language) if stage.summary else "",
    }


def person_context(official: Official, language: str) -> dict[str, str]:
    return {"name": official.name, "title": official.title.get(language)}
