"""Rules that need the whole plan: references resolve, ids are unique, time zones exist."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from approvals.plan.delegation_rules import DelegationRefused, check_new
from approvals.plan.people import Agency
from approvals.plan.schema import DelegationSpec, Plan
from approvals.plan.stages import Cadence, StageKind, TimeoutPolicy

COORDINATOR = "lead_agency.coordinator"  # told of what needs a person when nobody else is

Problem = tuple[tuple[Any, ...], str]


def format_path(loc: tuple[Any, ...]) -> str:
    """('cycles', 0, 'stages', 1, 'id') -> 'cycles[0].stages[1].id'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _duplicates(items: Sequence[object], loc: tuple[Any, ...], what: str, key: str = "id") -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        value = getattr(item, key)
        if value in seen:
            first = format_path(loc + (seen[value],))
            yield loc + (i, key), f"duplicate {what} {key} '{value}' (first used at {first})"
        else:
            seen[value] = i


def cross_reference_problems(plan: Plan) -> list[Problem]:
    problems: list[Problem] = []
    problems += _duplicates(plan.agencies, ("agencies",), "agency")
    problems += _duplicates(plan.roles, ("roles",), "role")
    problems += _duplicates(plan.officials, ("officials",), "official")
    problems += _duplicates(plan.cycles, ("cycles",), "cycle")
    problems += _duplicates(plan.content_areas, ("content_areas",), "content area")

    agencies = {a.id for a in plan.agencies}
    roles = {r.id for r in plan.roles}

    try:
        ZoneInfo(plan.plan.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            (
                ("plan", "timezone"),
                f"unknown time zone '{plan.plan.timezone}' (use an IANA name such as Asia/Ho_Chi_Minh)",
            )
        )
    if plan.plan.issuer not in agencies:
        problems.append((("plan", "issuer"), f"unknown agency '{plan.plan.issuer}'"))

    for i, agency in enumerate(plan.agencies):
        for j, successor in enumerate(agency.successors):
            if successor not in agencies:
                problems.append((("agencies", i, "successors", j), f"unknown agency '{successor}'"))
            elif successor == agency.id:
                problems.append((("agencies", i, "successors", j), "an agency cannot succeed itself"))
        if agency.successors and agency.valid_to is None:
            problems.append(
                (("agencies", i, "valid_to"), "an agency with successors needs the date it ended (valid_to)")
            )

    for i, agency in enumerate(plan.agencies):
        problems += _duplicates(agency.succession, ("agencies", i, "succession"), "succession", key="duty")
        for j, entry in enumerate(agency.succession):
            if entry.to not in agency.successors:
                problems.append(
                    (
                        ("agencies", i, "succession", j, "to"),
                        f"'{entry.to}' is not among the successors of '{agency.id}'",
                    )
                )
    for i, role in enumerate(plan.roles):
        if role.carried_by is None:
            continue
        if role.carried_by.agency not in agencies:
            problems.append((("roles", i, "carried_by", "agency"), f"unknown agency '{role.carried_by.agency}'"))
        elif (split := _unsaid_split(plan, role.carried_by.agency, role.carried_by.duty)) is not None:
            problems.append((("roles", i, "carried_by", "duty"), split))

    for i, official in enumerate(plan.officials):
        if official.agency not in agencies:
            problems.append((("officials", i, "agency"), f"unknown agency '{official.agency}'"))
        for j, role_id in enumerate(official.roles):
            if role_id not in roles:
                problems.append((("officials", i, "roles", j), f"unknown role '{role_id}'"))

    for i, unit_entry in enumerate(plan.unit_officials):
        for j, role_id in enumerate(unit_entry.roles):
            if role_id not in roles:
                problems.append((("unit_officials", i, "roles", j), f"unknown role '{role_id}'"))
        for j, agency_id in enumerate(unit_entry.agencies):
            if agency_id not in agencies:
                problems.append((("unit_officials", i, "agencies", j), f"unknown agency '{agency_id}'"))

    for c, cycle in enumerate(plan.cycles):
        problems += _duplicates(cycle.stages, ("cycles", c, "stages"), "stage")
        for s, stage in enumerate(cycle.stages):
            at = ("cycles", c, "stages", s)
            for j, agency_id in enumerate(stage.acting_agencies):
                if agency_id not in agencies:
                    problems.append((at + ("acting_agencies", j), f"unknown agency '{agency_id}'"))
                elif (split := _unsaid_split(plan, agency_id, stage.duty)) is not None:
                    problems.append((at + ("duty",) if stage.duty else at + ("acting_agencies", j), split))
            for j, role_id in enumerate(stage.approvers):
                if role_id not in roles:
                    problems.append((at + ("approvers", j), f"unknown role '{role_id}'"))
            if stage.escalate_to is not None and stage.escalate_to not in roles:
                problems.append((at + ("escalate_to",), f"unknown role '{stage.escalate_to}'"))
            if stage.requester is not None and stage.requester not in roles:
                problems.append((at + ("requester",), f"unknown role '{stage.requester}'"))
            for r, rule in enumerate(stage.routing):
                for j, role_id in enumerate(rule.add_approvers):
                    if role_id not in roles:
                        problems.append((at + ("routing", r, "add_approvers", j), f"unknown role '{role_id}'"))
            earlier = {st.id for st in cycle.stages[:s]}
            for j, needed in enumerate(stage.depends_on or []):
                if needed not in earlier:
                    what = "a later stage" if any(st.id == needed for st in cycle.stages) else "no stage"
                    problems.append(
                        (
                            at + ("depends_on", j),
                            f"'{needed}' is {what} of this cycle: a stage can only depend on stages before it",
                        )
                    )
            if (
                stage.kind is not StageKind.implementation
                and stage.timeout_policy is TimeoutPolicy.keep_waiting
                and stage.escalate_to is None
                and not any(COORDINATOR in o.roles for o in plan.officials)
            ):
                problems.append(
                    (
                        at + ("on_timeout",),
                        "keep_waiting with nobody to tell: the step could wait "
                        f"forever unnoticed; give escalate_to, or an official holding "
                        f"'{COORDINATOR}', or on_timeout expire or proceed",
                    )
                )
            deciding = set(stage.approvers) | {role for rule in stage.routing for role in rule.add_approvers}
            if stage.escalate_to is not None and stage.escalate_to in deciding:
                problems.append(
                    (
                        at + ("escalate_to",),
                        f"'{stage.escalate_to}' already decides this step: an "
                        "escalation would bring in nobody new; name a superior "
                        "who is not among the approvers",
                    )
                )
            problems += _duplicates(stage.fields, at + ("fields",), "field")
            for j, shown in enumerate(stage.shows):
                earlier_stage = next((st for st in cycle.stages[:s] if st.id == shown), None)
                if earlier_stage is None:
                    what = "a later stage" if any(st.id == shown for st in cycle.stages) else "no stage"
                    problems.append(
                        (
                            at + ("shows", j),
                            f"'{shown}' is {what} of this cycle: a stage can only show what earlier stages received",
                        )
                    )
                elif not earlier_stage.kind.submitted or earlier_stage.kind in SEVERAL:
                    problems.append(
                        (
                            at + ("shows", j),
                            f"'{shown}' is a stage of kind '{earlier_stage.kind.value}': "
                            "only a single-branch stage that receives a submission can "
                            "be shown",
                        )
                    )
            if stage.acknowledge and not stage.kind.submitted:
                problems.append((at + ("acknowledge",), "only a stage that receives a submission is acknowledged"))
            if stage.per_content_area and not cycle.content_areas:
                problems.append(
                    (at + ("per_content_area",), f"cycle '{cycle.id}' carries no content areas: give its content_areas")
                )
            if stage.kind is StageKind.consolidation:
                if plan.report is None:
                    problems.append(
                        (
                            at + ("kind",),
                            "a consolidation stage needs the plan's 'report' section "
                            "(its recipients, signer and place)",
                        )
                    )
                if not any(st.kind is StageKind.report for st in cycle.stages[:s]):
                    problems.append(
                        (
                            at + ("kind",),
                            "a consolidation stage compiles the units' reports: it needs a "
                            "stage of kind 'report' before it in the same cycle",
                        )
                    )
            holders = {o.id for o in plan.officials if set(o.roles) & set(stage.approvers)}
            if stage.quorum is not None and stage.quorum > len(holders):
                has = _plural(len(holders), "official")
                problems.append(
                    (at + ("quorum",), f"quorum {stage.quorum} is more than the {has} holding the approver roles")
                )
    problems += _content_area_problems(plan)
    if plan.report is not None:
        for j, recipient in enumerate(plan.report.recipients):
            if recipient not in agencies:
                problems.append((("report", "recipients", j), f"unknown agency '{recipient}'"))
            elif not all(a.email for a in _every_successor(plan, recipient)):
                problems.append(
                    (
                        ("report", "recipients", j),
                        f"'{recipient}' (or an agency that succeeded it) "
                        "has no email: the report could not be sent to it",
                    )
                )
        if plan.report.signer not in roles:
            problems.append((("report", "signer"), f"unknown role '{plan.report.signer}'"))
    problems += _delegation_problems(plan, roles)
    return problems


SEVERAL = frozenset({StageKind.fan_out, StageKind.report})  # one branch per unit


def _unsaid_split(plan: Plan, agency_id: str, duty: str | None) -> str | None:
    """Why a duty of an agency could fall to a successor the plan did not choose: somewhere on
    its line of successors an agency split in two or more, and its succession does not say who
    took this duty. None when every step is clear (one successor, or the duty named)."""
    by_id = {a.id: a for a in plan.agencies}
    current, seen = by_id.get(agency_id), set()
    while current is not None and current.successors and current.id not in seen:
        seen.add(current.id)
        if len(current.successors) == 1:
            current = by_id.get(current.successors[0])
            continue
        named = next((e.to for e in current.succession if e.duty == duty), None) if duty else None
        if named is None:
            went = " and ".join(current.successors)
            duties = ", ".join(e.duty for e in current.succession) or "none yet"
            return (
                f"'{current.id}' split: its duties went to {went}, and the plan does not say which takes this "
                f"one; name a duty from its succession ({duties})"
                + ("" if current.succession else ", or add a succession to it")
            )
        current = by_id.get(named)
    return None


def _content_area_problems(plan: Plan) -> list[Problem]:
    """Every content area the plan declares runs at each cadence it declares, in a cycle of
    that cadence that carries it; a cycle carries only declared areas, at a cadence they have."""
    problems: list[Problem] = []
    areas = {a.id: a for a in plan.content_areas}
    carried: set[tuple[str, str]] = set()
    for c, cycle in enumerate(plan.cycles):
        for j, area in enumerate(cycle.content_areas):
            if area not in areas:
                problems.append((("cycles", c, "content_areas", j), f"unknown content area '{area}'"))
            elif cycle.cadence not in areas[area].cadences:
                allowed = ", ".join(c.value for c in areas[area].cadences)
                problems.append(
                    (
                        ("cycles", c, "content_areas", j),
                        f"content area '{area}' runs {allowed}, not {cycle.cadence.value}",
                    )
                )
            else:
                carried.add((area, cycle.cadence.value))
    for i, declared in enumerate(plan.content_areas):
        missing = [c.value for c in declared.cadences if (declared.id, c.value) not in carried]
        if missing:
            problems.append(
                (
                    ("content_areas", i, "cadences"),
                    f"no cycle carries content area '{declared.id}' at its {' and '.join(missing)} "
                    f"cadence{'s' if len(missing) > 1 else ''}: "
                    "name it in the content_areas of a cycle with that cadence",
                )
            )
    return problems


def _every_successor(plan: Plan, agency_id: str) -> list[Agency]:
    """The agency and every agency that succeeded it, at any date (each may be a recipient some day)."""
    by_id = {a.id: a for a in plan.agencies}
    found, todo, seen = [], [agency_id], set()
    while todo:
        current = todo.pop(0)
        if current in seen or current not in by_id:
            continue
        seen.add(current)
        found.append(by_id[current])
        todo += by_id[current].successors
    return found


def _delegation_problems(plan: Plan, roles: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    officials = {o.id for o in plan.officials}
    accepted: list[DelegationSpec] = []
    for i, spec in enumerate(plan.delegations):
        at = ("delegations", i)
        bad = False
        for field in ("delegator", "delegate"):
            if getattr(spec, field) not in officials:
                problems.append((at + (field,), f"unknown official '{getattr(spec, field)}'"))
                bad = True
        if spec.role is not None and spec.role not in roles:
            problems.append((at + ("role",), f"unknown role '{spec.role}'"))
            bad = True
        if bad:
            continue
        try:
            check_new(spec, accepted)
        except DelegationRefused as exc:
            problems.append((at, str(exc)))
            continue
        accepted.append(spec)
    return problems


def stage_days(plan: Plan, cycle_index: int, stage_index: int, year: int) -> list[dt.date]:
    """The days a stage of a cycle of `year` takes its branches from: a yearly cycle's stage on
    the day it opens (its own date, else the cycle's start), a monthly or per-event one on the
    first of each month."""
    cycle = plan.cycles[cycle_index]
    stage = cycle.stages[stage_index]
    if cycle.cadence is not Cadence.yearly:
        return [dt.date(year, month, 1) for month in range(1, 13)]
    if stage.opens_on is not None:
        return [dt.date(year, stage.opens_on.month, stage.opens_on.day)]
    return [cycle.start_in(year)]


def branch_counts(plan: Plan, year: int) -> dict[tuple[str, str], int]:
    """How many branches each stage has in a year (the most on any of its days)."""
    return {
        (cycle.id, stage.id): max(len(plan.branches(stage, day)) for day in stage_days(plan, c, s, year))
        for c, cycle in enumerate(plan.cycles)
        for s, stage in enumerate(cycle.stages)
    }


def branch_problems(plan: Plan, year: int) -> list[Problem]:
    """Branches of a year that could not be routed: a unit whose branch nobody could be asked
    to submit (nobody holds the stage's requester role for it on the day), or nobody could decide."""
    problems: list[Problem] = []
    for c, cycle in enumerate(plan.cycles):
        for s, stage in enumerate(cycle.stages):
            if stage.kind not in (StageKind.fan_out, StageKind.report):
                continue
            at = ("cycles", c, "stages", s, "acting_kinds" if stage.acting_kinds else "acting_agencies")
            seen: set[str] = set()
            for day in stage_days(plan, c, s, year):
                for unit in plan.branches(stage, day):
                    if unit in seen:
                        continue
                    name = plan.agency(unit).name.en
                    if stage.requester and not plan.holders(stage.requester, day, unit=unit):
                        seen.add(unit)
                        problems.append(
                            (
                                at,
                                f"in {year} (on {day}) nobody holds '{stage.requester}' for unit "
                                f"'{unit}' ({name}): stage '{stage.id}' could not ask it to submit",
                            )
                        )
                    elif not any(plan.holders(role, day, unit=unit) for role in stage.approvers):
                        seen.add(unit)
                        problems.append(
                            (
                                at,
                                f"in {year} (on {day}) nobody holds any of {', '.join(stage.approvers)} "
                                f"for unit '{unit}' ({name}): nobody could decide its branch of "
                                f"stage '{stage.id}'",
                            )
                        )
    return problems
