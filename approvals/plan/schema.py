"""The plan file's shape: agencies, roles, officials, cycles and their stages.

Structural rules live on the models; rules that need the whole plan (does this
role exist? is this id used twice?) live in `checks.py`, so every problem is
reported with its path instead of stopping at the first.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

AsciiId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
RoleId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$", max_length=96)]


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

    @model_validator(mode="after")
    def _ordered(self) -> Validity:
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        return self

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
    kind: AgencyKind
    successors: list[AsciiId] = []
    authority: str = Field("assigned", pattern=r"^(assigned|request_only)$")


class Role(Strict):
    id: RoleId
    name: Text


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
    language: Language = Language.vi


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


class Policy(str, Enum):
    any = "any"
    all = "all"
    quorum = "quorum"
    sequence = "sequence"


class TimeoutPolicy(str, Enum):
    escalate = "escalate"
    expire = "expire"
    keep_waiting = "keep_waiting"


class Due(Strict):
    """When a stage's request falls due: days after the cycle starts, or a fixed day of the year."""

    offset_days: int | None = Field(None, ge=0, le=366)
    month: int | None = Field(None, ge=1, le=12)
    day: int | None = Field(None, ge=1, le=31)
    inclusive: bool = Field(False, description="'before 30/11' is exclusive: due at the end of 29/11.")

    @model_validator(mode="after")
    def _one_form(self) -> Due:
        fixed = self.month is not None or self.day is not None
        if (self.offset_days is None) == (not fixed):
            raise ValueError("give either offset_days, or month and day")
        if fixed and (self.month is None or self.day is None):
            raise ValueError("a fixed due date needs both month and day")
        if fixed:
            dt.date(2024, self.month, self.day)  # raises for 31/2 and the like (2024 allows 29/2)
        return self


class Stage(Strict):
    id: AsciiId
    number: str = Field(pattern=r"^([0-9]+|E)$")
    name: Text
    kind: StageKind
    acting_agencies: list[AsciiId] = Field(min_length=1)
    approvers: list[RoleId] = []
    policy: Policy = Policy.any
    quorum: int | None = Field(None, ge=1)
    due: Due
    reminders_before_days: list[int] = []
    escalate_to: RoleId | None = None
    on_timeout: TimeoutPolicy = TimeoutPolicy.escalate
    summary: Text | None = None

    @model_validator(mode="after")
    def _policy_fits(self) -> Stage:
        if self.policy is Policy.quorum and self.quorum is None:
            raise ValueError("policy 'quorum' needs a 'quorum' count")
        if self.policy is not Policy.quorum and self.quorum is not None:
            raise ValueError("'quorum' is only used with policy 'quorum'")
        if self.kind is not StageKind.implementation and not self.approvers:
            raise ValueError(f"a stage of kind '{self.kind.value}' needs at least one approver role")
        return self


class ContentArea(Strict):
    id: AsciiId
    name: Text
    cadences: list[Cadence] = Field(min_length=1)


class CycleKind(Strict):
    id: AsciiId
    name: Text
    cadence: Cadence
    starts_on: str | None = Field(None, pattern=r"^[0-9]{2}-[0-9]{2}$", description="MM-DD the yearly cycle starts.")
    stages: list[Stage] = Field(min_length=1)


class PlanInfo(Strict):
    id: AsciiId
    title: Text
    issuer: AsciiId
    legal_basis: str
    timezone: str = "Asia/Ho_Chi_Minh"
    languages: list[Language] = [Language.vi, Language.en]


class Plan(Strict):
    plan: PlanInfo
    agencies: list[Agency] = Field(min_length=1)
    roles: list[Role] = Field(min_length=1)
    officials: list[Official] = []
    content_areas: list[ContentArea] = []
    cycles: list[CycleKind] = Field(min_length=1)

    def agency(self, agency_id: str) -> Agency:
        return next(a for a in self.agencies if a.id == agency_id)

    def role(self, role_id: str) -> Role:
        return next(r for r in self.roles if r.id == role_id)

    def official(self, official_id: str) -> Official | None:
        return next((o for o in self.officials if o.id == official_id), None)

    def cycle(self, cycle_id: str) -> CycleKind:
        return next(c for c in self.cycles if c.id == cycle_id)

    def holders(self, role_id: str, on: dt.date) -> list[Official]:
        """Officials holding a role on a day: both the official and their agency must be valid then."""
        return [
            o
            for o in self.officials
            if role_id in o.roles and o.valid_on(on) and self.agency(o.agency).valid_on(on)
        ]
