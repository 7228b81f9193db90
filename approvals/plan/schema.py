"""The plan file's shape: agencies, roles, officials, cycles and their stages.

Structural rules live on the models; rules that need the whole plan (does this
role exist? is this id used twice?) live in `checks.py`, so every problem is
reported with its path instead of stopping at the first.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)


def _quoted(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


def _either(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def _ascii_id(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", value):
        raise ValueError(f"id {_quoted(value)} must use lowercase ASCII letters, digits and _, starting with a letter")
    if len(value) > 64:
        raise ValueError(f"id {_quoted(value)} is longer than 64 characters")
    return value


def _role_id(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*", value):
        raise ValueError(
            f"role id {_quoted(value)} must use lowercase ASCII letters, digits and _, with dots separating parts"
            " (e.g. lead_agency.director), each part starting with a letter"
        )
    if len(value) > 96:
        raise ValueError(f"role id {_quoted(value)} is longer than 96 characters")
    return value


AsciiId = Annotated[str, AfterValidator(_ascii_id)]
RoleId = Annotated[str, AfterValidator(_role_id)]


def _one_of(enum: type[Enum], noun: str) -> BeforeValidator:
    """Name the bad value and the allowed ones, e.g. unknown policy 'majority' (use any, all, quorum or sequence)."""
    allowed = [member.value for member in enum]

    def check(value: Any) -> Any:
        if isinstance(value, enum) or (isinstance(value, str) and value in allowed):
            return value
        raise ValueError(f"unknown {noun} {_quoted(value)} (use {_either(allowed)})")

    return BeforeValidator(check)


def _day_of_year(month: int, day: int) -> bool:
    try:
        dt.date(2024, month, day)  # a leap year, so 29/2 is a day of the year
    except ValueError:
        return False
    return True


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    """A user-facing text in both languages."""

    vi: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def get(self, language: str) -> str:
        return self.en if language == "en" else self.vi


class Validity(Strict):
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None

    @field_validator("valid_to")
    @classmethod
    def _not_before_start(cls, valid_to: dt.date | None, info: ValidationInfo) -> dt.date | None:
        # A field validator, so the problem is reported at valid_to (valid_from is validated first).
        valid_from = info.data.get("valid_from")
        if valid_from and valid_to and valid_to < valid_from:
            raise ValueError(f"valid_to {valid_to} is before valid_from {valid_from}")
        return valid_to

    def valid_on(self, day: dt.date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_to is None or day <= self.valid_to)


class AgencyKind(str, Enum):
    state_executive = "state_executive"
    department = "department"
    party_body = "party_body"
    press = "press"
    association = "association"
    public_service_unit = "public_service_unit"
    local_government = "local_government"


class Agency(Validity):
    id: AsciiId
    name: Text
    kind: Annotated[AgencyKind, _one_of(AgencyKind, "agency kind")]
    successors: list[AsciiId] = []
    authority: str = "assigned"

    @field_validator("authority")
    @classmethod
    def _known_authority(cls, authority: str) -> str:
        if authority not in ("assigned", "request_only"):
            raise ValueError(f"unknown authority {_quoted(authority)} (use assigned or request_only)")
        return authority


class Role(Strict):
    id: RoleId
    name: Text
    per_unit: bool = Field(
        False, description="Held in each unit (an outlet's head): in a branch for one unit, only that unit's holder acts.")


class Language(str, Enum):
    vi = "vi"
    en = "en"


class Official(Validity):
    id: AsciiId
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    agency: AsciiId
    title: Text
    roles: list[RoleId] = Field(min_length=1)
    language: Annotated[Language, _one_of(Language, "language")] = Language.vi


class Cadence(str, Enum):
    yearly = "yearly"
    monthly = "monthly"
    per_event = "per_event"


class StageKind(str, Enum):
    approval = "approval"
    submission = "submission"
    fan_out = "fan_out"
    budget = "budget"
    implementation = "implementation"
    report = "report"

    @property
    def submitted(self) -> bool:
        """Someone must submit something (a form behind a link) before the approvers decide."""
        return self in (StageKind.submission, StageKind.fan_out, StageKind.budget, StageKind.report)


class Policy(str, Enum):
    any = "any"
    all = "all"
    quorum = "quorum"
    sequence = "sequence"


class TimeoutPolicy(str, Enum):
    escalate = "escalate"
    expire = "expire"
    keep_waiting = "keep_waiting"


class EscalationMode(str, Enum):
    add = "add"  # the superior joins the approvers; the original links keep working
    handover = "handover"  # the step moves to the superior; the original links stop working


class RoutingRule(Strict):
    """Routing by data: e.g. a budget above a threshold also needs the PPC vice-chair."""

    field: AsciiId
    above: int = Field(ge=0)
    add_approvers: list[RoleId] = []
    policy: Annotated[Policy, _one_of(Policy, "policy")] | None = None

    def applies(self, data: dict) -> bool:
        value = data.get(self.field)
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value > self.above


class Due(Strict):
    """When a stage's request falls due: days after the cycle starts, or a fixed day of the year."""

    offset_days: int | None = Field(None, ge=0, le=366)
    month: int | None = Field(None, ge=1, le=12)
    day: int | None = Field(None, ge=1, le=31)
    inclusive: bool = Field(False, description="'before 30/11' is exclusive: due at the end of 29/11.")

    @field_validator("day")
    @classmethod
    def _day_in_month(cls, day: int | None, info: ValidationInfo) -> int | None:
        month = info.data.get("month")
        if day is not None and month is not None and not _day_of_year(month, day):
            raise ValueError(f"month {month} has no day {day}")
        return day

    @model_validator(mode="after")
    def _one_form(self) -> Due:
        fixed = self.month is not None or self.day is not None
        if (self.offset_days is None) == (not fixed):
            raise ValueError("give either offset_days, or month and day")
        if fixed and (self.month is None or self.day is None):
            raise ValueError("a fixed due date needs both month and day")
        return self


class Stage(Strict):
    id: AsciiId
    number: str
    name: Text
    kind: Annotated[StageKind, _one_of(StageKind, "stage kind")]
    acting_agencies: list[AsciiId] = Field(min_length=1)
    approvers: list[RoleId] = []
    policy: Annotated[Policy, _one_of(Policy, "policy")] = Policy.any
    quorum: int | None = Field(None, ge=1)
    due: Due
    reminders_before_days: list[int] = []
    escalate_to: RoleId | None = None
    escalation: Annotated[EscalationMode, _one_of(EscalationMode, "escalation mode")] = EscalationMode.add
    escalation_days: int | None = Field(
        7, ge=1, le=366, description="Days after an escalation before the request expires; null keeps waiting.")
    on_timeout: Annotated[TimeoutPolicy, _one_of(TimeoutPolicy, "timeout policy")] | None = Field(
        None, description="At the due time: escalate, expire or keep_waiting; default escalate when escalate_to is set.")
    requester: RoleId | None = Field(None, description="The role that submits the step (it may not approve it).")
    routing: list[RoutingRule] = []
    summary: Text | None = None

    @field_validator("number")
    @classmethod
    def _number_form(cls, number: str) -> str:
        if not re.fullmatch(r"[0-9]+|E", number):
            raise ValueError(f"stage number {_quoted(number)} must be digits, or E")
        return number

    @model_validator(mode="after")
    def _policy_fits(self) -> Stage:
        if self.policy is Policy.quorum and self.quorum is None:
            raise ValueError("policy 'quorum' needs a 'quorum' count")
        if self.policy is not Policy.quorum and self.quorum is not None:
            raise ValueError("'quorum' is only used with policy 'quorum'")
        if self.kind is not StageKind.implementation and not self.approvers:
            raise ValueError(f"a stage of kind '{self.kind.value}' needs at least one approver role")
        if self.on_timeout is TimeoutPolicy.escalate and self.escalate_to is None:
            raise ValueError("on_timeout 'escalate' needs an 'escalate_to' role")
        if self.kind.submitted and self.requester is None:
            raise ValueError(f"a stage of kind '{self.kind.value}' needs a 'requester' role (who submits it)")
        return self

    @property
    def timeout_policy(self) -> TimeoutPolicy:
        if self.on_timeout is not None:
            return self.on_timeout
        return TimeoutPolicy.escalate if self.escalate_to else TimeoutPolicy.keep_waiting

    def routed(self, data: dict) -> tuple[list[str], Policy]:
        """Approver roles and policy after the routing rules that the request's data triggers."""
        approvers, policy = list(self.approvers), self.policy
        for rule in self.routing:
            if rule.applies(data):
                approvers += [role for role in rule.add_approvers if role not in approvers]
                policy = rule.policy or policy
        return approvers, policy


class ContentArea(Strict):
    id: AsciiId
    name: Text
    cadences: list[Annotated[Cadence, _one_of(Cadence, "cadence")]] = Field(min_length=1)


class CycleKind(Strict):
    id: AsciiId
    name: Text
    cadence: Annotated[Cadence, _one_of(Cadence, "cadence")]
    starts_on: str | None = Field(None, description="MM-DD the yearly cycle starts.")
    stages: list[Stage] = Field(min_length=1)

    @field_validator("starts_on")
    @classmethod
    def _month_day(cls, starts_on: str | None) -> str | None:
        if starts_on is None:
            return None
        if not re.fullmatch(r"[0-9]{2}-[0-9]{2}", starts_on):
            raise ValueError(f"starts_on {_quoted(starts_on)} must be MM-DD, e.g. 01-15")
        month, day = (int(part) for part in starts_on.split("-"))
        if not _day_of_year(month, day):
            raise ValueError(f"starts_on {_quoted(starts_on)} is not a day of the year (MM-DD)")
        return starts_on


class PlanInfo(Strict):
    id: AsciiId
    title: Text
    issuer: AsciiId
    legal_basis: str
    timezone: str = "Asia/Ho_Chi_Minh"
    languages: list[Annotated[Language, _one_of(Language, "language")]] = [Language.vi, Language.en]


class DelegationSpec(Validity):
    """An official hands a role (or all their roles) to another for a date range ("ủy quyền")."""

    delegator: AsciiId
    delegate: AsciiId
    role: RoleId | None = None
    valid_from: dt.date
    valid_to: dt.date
    reason: str = ""


class Plan(Strict):
    plan: PlanInfo
    agencies: list[Agency] = Field(min_length=1)
    roles: list[Role] = Field(min_length=1)
    officials: list[Official] = []
    content_areas: list[ContentArea] = []
    cycles: list[CycleKind] = Field(min_length=1)
    delegations: list[DelegationSpec] = []

    def agency(self, agency_id: str) -> Agency:
        return next(a for a in self.agencies if a.id == agency_id)

    def agency_on(self, agency_id: str, on: dt.date) -> Agency:
        """The agency that carries a duty on a day: itself, or the first valid successor after a merger."""
        agency, seen = self.agency(agency_id), set()
        while not agency.valid_on(on) and agency.successors and agency.id not in seen:
            seen.add(agency.id)
            agency = self.agency(agency.successors[0])
        return agency

    def role(self, role_id: str) -> Role:
        return next(r for r in self.roles if r.id == role_id)

    def official(self, official_id: str) -> Official | None:
        return next((o for o in self.officials if o.id == official_id), None)

    def cycle(self, cycle_id: str) -> CycleKind:
        return next(c for c in self.cycles if c.id == cycle_id)

    def holders(self, role_id: str, on: dt.date, *, unit: str | None = None) -> list[Official]:
        """Officials holding a role on a day: both the official and their agency must be valid then.
        For a per-unit role and a unit (a fan-out branch), only holders in the agency carrying
        that unit's duty on the day (itself, or its successor after a merger)."""
        scoped = unit is not None and any(r.id == role_id and r.per_unit for r in self.roles)
        carrier = self.agency_on(unit, on).id if scoped else None
        return [
            o
            for o in self.officials
            if role_id in o.roles and o.valid_on(on) and self.agency(o.agency).valid_on(on)
            and (carrier is None or o.agency == carrier)
        ]

    def branches(self, stage: Stage, on: dt.date) -> list[str]:
        """The units a stage runs for: one branch per acting agency carrying the duty on the day
        for a fan-out or a report (each unit reports; merged agencies make one branch), else the
        single branch ''."""
        if stage.kind not in (StageKind.fan_out, StageKind.report):
            return [""]
        return list(dict.fromkeys(self.agency_on(a, on).id for a in stage.acting_agencies))
