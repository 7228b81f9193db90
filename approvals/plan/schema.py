"""The plan file's shape: the plan itself (its agencies, roles, officials, cycles, delegations
and report) and what it answers about them.

Structural rules live on the models; rules that need the whole plan (does this
role exist? is this id used twice?) live in `checks.py`, so every problem is
reported with its path instead of stopping at the first. The models of its parts are in
`values.py`, `people.py` and `stages.py`; this module names them all."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from pydantic import (
    Field,
    PrivateAttr,
    model_validator,
)

from approvals.errors import NotFound
from approvals.plan.people import Agency, Language, Official, Role, UnitOfficials, Validity
from approvals.plan.stages import ContentArea, CycleKind, FieldSpec, Stage, StageKind
from approvals.plan.values import AsciiId, RoleId, Strict, Text, one_of


class PlanInfo(Strict):
    id: AsciiId
    title: Text
    issuer: AsciiId
    legal_basis: str
    timezone: str = "Asia/Ho_Chi_Minh"
    languages: list[Annotated[Language, one_of(Language, "language")]] = [Language.vi, Language.en]
    min_notice_days: int = Field(
        7, ge=0, le=60, description="A step is never due sooner than this many days after it opens (a late start)."
    )


class ReportSpec(Strict):
    """The lead agency's consolidated annual report (Decree 30/2020/NĐ-CP layout)."""

    recipients: list[AsciiId] = Field(
        min_length=1,
        description="Agencies it goes to: listed under Nơi nhận and emailed (an agency merged "
        "away sends it to every successor in force).",
    )
    governing_body: str = Field(
        "UBND TỈNH LẠNG SƠN",
        min_length=1,
        max_length=60,
        description="The issuing body's governing body, top left (upper case).",
    )
    signer: RoleId = Field("lead_agency.director", description="The role that approves and signs it.")
    signer_title: Text = Field(Text(vi="Giám đốc", en="Director"), description="Its capacity above the signature.")
    place: str = Field("Lạng Sơn", min_length=1, max_length=60, description="The place before its date.")


class DelegationSpec(Validity):
    """An official hands a role (or all their roles) to another for a date range ("ủy quyền")."""

    delegator: AsciiId
    delegate: AsciiId
    role: RoleId | None = None
    valid_from: dt.date
    valid_to: dt.date
    reason: str = ""


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


_Item = TypeVar("_Item", bound=_HasId)


class Plan(Strict):
    plan: PlanInfo
    agencies: list[Agency] = Field(min_length=1)
    roles: list[Role] = Field(min_length=1)
    officials: list[Official] = []
    unit_officials: list[UnitOfficials] = Field(
        [], description="Officials made for each unit of some kinds that names nobody in the roles."
    )
    content_areas: list[ContentArea] = []
    cycles: list[CycleKind] = Field(min_length=1)
    delegations: list[DelegationSpec] = []
    report: ReportSpec | None = Field(None, description="The consolidated annual report to the PPC.")

    @property
    def tz(self) -> ZoneInfo:
        """The plan's time zone (`plan.timezone`): the one source of local days, due times, the
        schedules and every time shown (`plan check` refuses an unknown one)."""
        return ZoneInfo(self.plan.timezone)

    @model_validator(mode="after")
    def _make_unit_officials(self) -> Plan:
        """Add the officials `unit_officials` makes, after the ones the file names (which come
        first wherever both hold a role). A unit that already has a holder of every role of an
        entry gets nobody from it; an unknown agency is reported by the cross-reference checks."""
        made: list[Official] = []
        known = {o.id for o in self.officials}
        for entry in self.unit_officials:
            kinds = set(entry.kinds)
            for agency in self.agencies:
                if agency.kind not in kinds and agency.id not in entry.agencies:
                    continue
                held = {role for o in [*self.officials, *made] if o.agency == agency.id for role in o.roles}
                missing = [role for role in entry.roles if role not in held]
                if not missing:
                    continue
                official = entry.made_for(agency).model_copy(update={"roles": missing})
                if official.id in known:
                    continue  # reported as a duplicate id would be confusing: the file's own wins
                known.add(official.id)
                made.append(official)
        if made:
            object.__setattr__(self, "officials", [*self.officials, *made])
        return self

    # id(list) -> (the list, its index): lists of agencies, roles, officials, cycles and stages
    _by_id_cache: dict[int, tuple[list[Any], dict[str, Any]]] = PrivateAttr(default_factory=dict)

    def _by_id(self, items: list[_Item]) -> dict[str, _Item]:
        """An index of a list of the plan by id (the first of a duplicated id, as a scan finds).
        Kept with the very list it indexes: a copy of the plan with other officials
        (`model_copy(update=...)`) builds its own."""
        cached = self._by_id_cache.get(id(items))
        if cached is not None and cached[0] is items:
            index: dict[str, _Item] = cached[1]
        else:
            index = {item.id: item for item in reversed(items)}
            self._by_id_cache[id(items)] = (items, index)
        return index

    def agency(self, agency_id: str) -> Agency:
        return self._by_id(self.agencies)[agency_id]

    def agency_on(self, agency_id: str, on: dt.date, duty: str | None = None) -> Agency:
        """The agency that carries an agency's duty on a day: itself while in force; after it
        ended, the successor its succession names for the duty, else its only successor (a
        merger), followed on. A split with nothing said of the duty falls to the first successor:
        `plan check` refuses a plan where that could happen."""
        agency, seen = self.agency(agency_id), set()
        while not agency.valid_on(on) and agency.successors and agency.id not in seen:
            seen.add(agency.id)
            named = next((s.to for s in agency.succession if s.duty == duty), None) if duty else None
            agency = self.agency(named or agency.successors[0])
        return agency

    def in_force(self, agency_id: str, on: dt.date) -> list[Agency]:
        """Every agency carrying an agency's duties on a day: itself, or all its successors in
        force (a split sends a document to each part)."""
        found, todo, seen = [], [agency_id], set()
        while todo:
            agency = self.agency(todo.pop(0))
            if agency.id in seen:
                continue
            seen.add(agency.id)
            if agency.valid_on(on):
                found.append(agency)
            else:
                todo += agency.successors
        return found

    def fields_of(self, cycle_id: str, stage: Stage) -> list[FieldSpec]:
        """The named boxes of a stage's form: its own fields, then one per content area its cycle
        carries when the stage asks for them (optional: a unit may have nothing for an area)."""
        fields = list(stage.fields)
        if stage.per_content_area:
            areas = {a.id: a for a in self.content_areas}
            fields += [
                FieldSpec(id=f"area_{area}", name=areas[area].name, required=False)
                for area in self.cycle(cycle_id).content_areas
                if area in areas
            ]
        return fields

    def role(self, role_id: str) -> Role:
        """The plan's role; `NotFound` where the plan has none of that id."""
        role = self._by_id(self.roles).get(role_id)
        if role is None:
            raise NotFound(f"the plan has no role {role_id!r}")
        return role

    def official(self, official_id: str) -> Official | None:
        return self._by_id(self.officials).get(official_id)

    def cycle(self, cycle_id: str) -> CycleKind:
        """The plan's cycle kind; `NotFound` where the plan has none of that id."""
        kind = self._by_id(self.cycles).get(cycle_id)
        if kind is None:
            raise NotFound(f"the plan has no cycle {cycle_id!r}")
        return kind

    def stage(self, cycle_id: str, stage_id: str) -> Stage | None:
        """The one lookup of a stage: the plan's stage of a cycle kind, or None where the plan has
        no such cycle or stage (it was changed since; `steps.stage_of` makes that a dead link)."""
        kind = self._by_id(self.cycles).get(cycle_id)
        return self._by_id(kind.stages).get(stage_id) if kind is not None else None

    def holders(self, role_id: str, on: dt.date, *, unit: str | None = None) -> list[Official]:
        """Officials holding a role on a day: both the official and their agency must be valid then.
        For a per-unit role and a unit (a fan-out branch), only holders in the agency carrying
        that unit's duty on the day (itself, or its successor after a merger)."""
        role = next((r for r in self.roles if r.id == role_id), None)
        scoped = unit is not None and role is not None and role.per_unit
        carrier = self.agency_on(unit, on).id if scoped and unit is not None else None
        if carrier is None and role is not None and role.carried_by is not None:
            carrier = self.agency_on(role.carried_by.agency, on, role.carried_by.duty).id
        return [
            o
            for o in self.officials
            if role_id in o.roles
            and o.valid_on(on)
            and self.agency(o.agency).valid_on(on)
            and (carrier is None or o.agency == carrier)
        ]

    def branches(self, stage: Stage, on: dt.date) -> list[str]:
        """The units a stage runs for: one branch per acting agency carrying the duty on the day
        for a fan-out or a report (each unit reports; merged agencies make one branch), then one
        per agency of its acting kinds in force that day; else the single branch ''."""
        if stage.kind not in (StageKind.fan_out, StageKind.report):
            return [""]
        named = [self.agency_on(a, on, stage.duty).id for a in stage.acting_agencies]
        kinds = set(stage.acting_kinds)
        return list(dict.fromkeys(named + [a.id for a in self.agencies if a.kind in kinds and a.valid_on(on)]))
