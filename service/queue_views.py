"""What the queue's pages show of an official's open steps: grouped by cycle and stage, the
filters, each bulk decision's results. Builds the pages' values; reads and decides nothing."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from approvals.routing.queue import OpenStep, QueueFilter
from approvals.routing.steps import StageNotInPlan, stage_of
from approvals.tokens import derive_token
from approvals.wording.presentation import cycle_context, dated_time

# What became of one step of a bulk decision (the page's words: queue.result.<value>).
DONE, ALREADY, CLOSED, NOT_YOURS, REFUSED, ACKNOWLEDGE_ONLY = (
    "done",
    "already",
    "closed",
    "not_yours",
    "refused",
    "acknowledge_only",
)


def read_filter(values: Mapping[str, object]) -> QueueFilter:
    def text(name: str) -> str:
        value = values.get(name, "")
        return value[:120] if isinstance(value, str) else ""

    return QueueFilter(cycle=text("cycle"), stage=text("stage"), unit=text("unit"), overdue=text("overdue") == "1")


def filter_query(chosen: QueueFilter, language: str | None = None, **extra: str) -> str:
    pairs = {
        "cycle": chosen.cycle,
        "stage": chosen.stage,
        "unit": chosen.unit,
        "overdue": "1" if chosen.overdue else "",
    }
    pairs |= {"lang": language or "", **extra}
    return urlencode({k: v for k, v in pairs.items() if v})


def acknowledged(plan, step: OpenStep) -> bool:
    try:
        return stage_of(plan, step.cycle.kind, step.request.stage).acknowledge
    except StageNotInPlan:
        return False


def stage_title(plan, step: OpenStep, language: str) -> str:
    try:
        stage = stage_of(plan, step.cycle.kind, step.request.stage)
    except StageNotInPlan:
        return step.request.stage
    return f"{stage.number}. {stage.name.get(language)}"


def unit_name(plan, step: OpenStep, language: str) -> str:
    try:
        return plan.agency(step.request.acting_agency).name.get(language)
    except KeyError:
        return step.request.acting_agency


def title_of(plan, step: OpenStep, language: str) -> str:
    return f"{stage_title(plan, step, language)} · {unit_name(plan, step, language)}"


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    selected: bool


def facets(plan, steps: Sequence[OpenStep], chosen: QueueFilter, language: str) -> dict[str, list[Option]]:
    """The choices of each filter: the cycles, stages and units among the official's open steps."""
    cycles: dict[str, str] = {}
    stages: dict[str, str] = {}
    units: dict[str, str] = {}
    for step in steps:
        cycles.setdefault(str(step.cycle.id), cycle_context(plan, step.cycle, language=language)["cycle"])
        stages.setdefault(step.request.stage, stage_title(plan, step, language))
        units.setdefault(step.request.acting_agency, unit_name(plan, step, language))

    def options(found: dict[str, str], selected: str) -> list[Option]:
        return [Option(v, label, v == selected) for v, label in sorted(found.items(), key=lambda item: item[1])]

    return {
        "cycles": options(cycles, chosen.cycle),
        "stages": options(stages, chosen.stage),
        "units": options(units, chosen.unit),
    }


def groups(
    plan, steps: Iterable[OpenStep], *, secret: bytes, checked: set[uuid.UUID], now: dt.datetime, language: str
) -> list[dict]:
    """The steps shown, a group per cycle and stage (its name once), each with its live link."""
    shown: dict[tuple[str, str], dict] = {}
    for step in steps:
        key = (str(step.cycle.id), step.request.stage)
        group = shown.setdefault(
            key,
            {
                "stage": stage_title(plan, step, language),
                "cycle": cycle_context(plan, step.cycle, language=language)["cycle"],
                "acknowledge": acknowledged(plan, step),
                "steps": [],
            },
        )
        assignment = step.assignment
        group["steps"].append(
            {
                "n": sum(len(g["steps"]) for g in shown.values()) + 1,  # the checkbox's short id on the page
                "id": str(assignment.id),
                "unit": unit_name(plan, step, language),
                "due": dated_time(plan, step.cycle, step.request.due_at, language=language),
                "overdue": step.overdue(now),
                "checked": assignment.id in checked,
                "url": f"/a/{derive_token(secret, assignment.id, assignment.token_generation)}",
            }
        )
    return list(shown.values())
