"""What the plan does: its cycles (yearly, monthly, per event), their stages of each kind, who
requests and who decides, routing, due dates, timeouts and escalation."""

from __future__ import annotations

import datetime as dt
import re
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from approvals.plan.people import AgencyKind
from approvals.plan.values import AsciiId, Paragraphs, RoleId, Strict, Text, day_of_year, one_of, quoted


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
    # The lead agency compiles the units' reports into one document to the PPC: its coordinator
    # submits the generated draft (with a summary of their own), its director approves, and the
    # numbered report is emailed to the plan's report recipients.
    consolidation = "consolidation"

    @property
    def submitted(self) -> bool:
        """Someone must submit something (a form behind a link) before the approvers decide."""
        return self in (
            StageKind.submission,
            StageKind.fan_out,
            StageKind.budget,
            StageKind.report,
            StageKind.consolidation,
        )


class Policy(str, Enum):
    any = "any"
    all = "all"
    quorum = "quorum"
    sequence = "sequence"


class TimeoutPolicy(str, Enum):
    escalate = "escalate"
    expire = "expire"
    keep_waiting = "keep_waiting"
    proceed = "proceed"  # nothing came by the due time: the chain goes on without the stage (recorded)


class EscalationMode(str, Enum):
    add = "add"  # the superior joins the approvers; the original links keep working
    handover = "handover"  # the step moves to the superior; the original links stop working


class RoutingRule(Strict):
    """Routing by data: e.g. a budget above a threshold also needs the PPC vice-chair."""

    field: AsciiId
    above: int = Field(ge=0)
    add_approvers: list[RoleId] = []
    policy: Annotated[Policy, one_of(Policy, "policy")] | None = None

    def applies(self, data: dict[str, Any]) -> bool:
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
        if day is not None and month is not None and not day_of_year(month, day):
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


class DayOfYear(Strict):
    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)

    @field_validator("day")
    @classmethod
    def _day_in_month(cls, day: int, info: ValidationInfo) -> int:
        month = info.data.get("month")
        if month is not None and not day_of_year(month, day):
            raise ValueError(f"month {month} has no day {day}")
        return day


class FieldSpec(Strict):
    """A named part of what a unit submits, with its own box on the form (the orientation's
    themes, channels and calendar)."""

    id: AsciiId
    name: Text
    required: bool = True


class Stage(Strict):
    id: AsciiId
    number: str
    name: Text
    kind: Annotated[StageKind, one_of(StageKind, "stage kind")]
    acting_agencies: list[AsciiId] = []
    acting_kinds: list[Annotated[AgencyKind, one_of(AgencyKind, "agency kind")]] = Field(
        [], description="Also every agency of these kinds in force on the day (one branch each)."
    )
    depends_on: list[AsciiId] | None = Field(
        None, description="Stages whose outcome this one needs; default the one before it; [] for none."
    )
    opens_on: DayOfYear | None = Field(None, description="Opens on this day of the cycle's year, not before.")
    approvers: list[RoleId] = []
    policy: Annotated[Policy, one_of(Policy, "policy")] = Policy.any
    quorum: int | None = Field(None, ge=1)
    due: Due
    reminders_before_days: list[int] = []
    escalate_to: RoleId | None = None
    escalation: Annotated[EscalationMode, one_of(EscalationMode, "escalation mode")] = EscalationMode.add
    escalation_days: int | None = Field(
        7, ge=1, le=366, description="Days after an escalation before the request expires; null keeps waiting."
    )
    on_timeout: Annotated[TimeoutPolicy, one_of(TimeoutPolicy, "timeout policy")] | None = Field(
        None, description="At the due time: escalate, expire or keep_waiting; default escalate when escalate_to is set."
    )
    requester: RoleId | None = Field(None, description="The role that submits the step (it may not approve it).")
    routing: list[RoutingRule] = []
    summary: Paragraphs | None = None
    fields: list[FieldSpec] = Field(
        [], description="Named parts of the submission, each with its own box on the form, besides the text."
    )
    per_content_area: bool = Field(
        False, description="One box per content area the cycle carries (what the unit plans, or did, for each)."
    )
    shows: list[AsciiId] = Field(
        [],
        description="Earlier single-branch stages of the cycle whose submissions travel with this one: "
        "shown on its form, its approval page and in its emails (the orientation and the "
        "Board's guidance, to the outlets).",
    )
    acknowledge: bool = Field(
        False,
        description="The approvers acknowledge what was submitted (or ask for it to be made clearer); "
        "they do not reject it: the Propaganda Board's guidance is requested, not ordered.",
    )
    duty: AsciiId | None = Field(
        None,
        description="Which duty of its acting agencies the stage is: after a split, the successor that took "
        "that duty acts (the agency's succession).",
    )
    go_on_at_due: bool = Field(
        False,
        description="At its due time the chain goes on to the next stage without waiting for every "
        "branch to settle (the open ones stay open): the annual reports, which the "
        "consolidated report then compiles as they stand.",
    )

    @field_validator("number")
    @classmethod
    def _number_form(cls, number: str) -> str:
        if not re.fullmatch(r"[0-9]+|E", number):
            raise ValueError(f"stage number {quoted(number)} must be digits, or E")
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
        if not self.acting_agencies and not self.acting_kinds:
            raise ValueError("a stage needs acting_agencies or acting_kinds (who acts)")
        if self.acting_kinds and self.kind not in (StageKind.fan_out, StageKind.report):
            raise ValueError("acting_kinds gives one branch per agency: only a fan_out or report stage has branches")
        return self

    @property
    def timeout_policy(self) -> TimeoutPolicy:
        if self.on_timeout is not None:
            return self.on_timeout
        return TimeoutPolicy.escalate if self.escalate_to else TimeoutPolicy.keep_waiting

    def routed(self, data: dict[str, Any]) -> tuple[list[str], Policy]:
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
    cadences: list[Annotated[Cadence, one_of(Cadence, "cadence")]] = Field(min_length=1)


class CycleKind(Strict):
    id: AsciiId
    name: Text
    cadence: Annotated[Cadence, one_of(Cadence, "cadence")]
    content_areas: list[AsciiId] = Field(
        [], description="The content areas this cycle carries (each at a cadence the area has)."
    )
    starts_on: str | None = Field(None, description="MM-DD the yearly cycle starts.")
    stages: list[Stage] = Field(min_length=1)

    @field_validator("starts_on")
    @classmethod
    def _month_day(cls, starts_on: str | None) -> str | None:
        if starts_on is None:
            return None
        if not re.fullmatch(r"[0-9]{2}-[0-9]{2}", starts_on):
            raise ValueError(f"starts_on {quoted(starts_on)} must be MM-DD, e.g. 01-15")
        month, day = (int(part) for part in starts_on.split("-"))
        if not day_of_year(month, day):
            raise ValueError(f"starts_on {quoted(starts_on)} is not a day of the year (MM-DD)")
        return starts_on

    @property
    def start_day(self) -> tuple[int, int]:
        """(month, day) a yearly cycle starts on: `starts_on`, or 1 January."""
        month, day = (int(part) for part in (self.starts_on or "01-01").split("-"))
        return month, day

    def start_in(self, year: int) -> dt.date:
        """The day this kind's cycle of a year starts."""
        return dt.date(year, *self.start_day)
