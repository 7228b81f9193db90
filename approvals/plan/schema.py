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
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    PrivateAttr,
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


# What an email header refuses (notifications.outbox): a name, title or address with one would
# fail every email it reaches, in the middle of a cycle. The plan check refuses it first.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x80-\x9f\u2028\u2029]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f\u2028\u2029]")  # line breaks allowed
# The addresses the outbox accepts: no quotes, commas, semicolons, brackets or spaces.
_ADDRESS = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


def _one_line(value: str) -> str:
    found = _CONTROL.search(value)
    if found:
        raise ValueError(
            f"contains a control character (U+{ord(found.group()):04X}), such as a line break: a name "
            "or title reaches email headers, which refuse it"
        )
    if value != value.strip():
        raise ValueError("starts or ends with a space")
    return value


def _paragraphs(value: str) -> str:
    found = _CONTROL_IN_TEXT.search(value)
    if found:
        raise ValueError(f"contains a control character (U+{ord(found.group()):04X})")
    return value


OneLine = Annotated[str, AfterValidator(_one_line)]


class Text(Strict):
    """A user-facing text in both languages: one line (it reaches email subjects and pages)."""

    vi: OneLine = Field(min_length=1, max_length=300)
    en: OneLine = Field(min_length=1, max_length=300)

    def get(self, language: str) -> str:
        return self.en if language == "en" else self.vi


class Paragraphs(Strict):
    """A longer text in both languages (a stage's summary): line breaks allowed, other control
    characters not."""

    vi: Annotated[str, AfterValidator(_paragraphs)] = Field(min_length=1, max_length=4000)
    en: Annotated[str, AfterValidator(_paragraphs)] = Field(min_length=1, max_length=4000)

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
    mass_organisation = "mass_organisation"
    public_service_unit = "public_service_unit"
    culture_centre = "culture_centre"
    local_government = "local_government"
    ministry = "ministry"  # a national ministry: a recipient of the province's reports


class Succession(Strict):
    """Which successor took one of an ended agency's duties (the DIC's plan leadership went to
    the DOST, its press management to the Department of Culture, Sports and Tourism), and
    whether that is verified for the province or assumed from the national pattern."""

    duty: AsciiId
    to: AsciiId
    verified: bool = Field(False, description="Confirmed for the province (else assumed from the national pattern).")
    basis: str = Field("", max_length=300, description="Where it is written, or why it is assumed.")


class Agency(Validity):
    id: AsciiId
    name: Text
    kind: Annotated[AgencyKind, _one_of(AgencyKind, "agency kind")]
    successors: list[AsciiId] = []
    succession: list[Succession] = Field(
        [], description="For an agency whose duties were split: which successor took each duty."
    )
    authority: str = "assigned"
    abbreviation: str | None = Field(
        None,
        pattern=r"^[A-ZĐ0-9]{2,16}$",
        description="Its short form in a document's symbol, upper case (Số: 12/BC-SKHCN).",
    )
    email: Annotated[EmailStr, AfterValidator(_outbox_address)] | None = Field(
        None, description="Its official mailbox, for documents addressed to it (the consolidated report)."
    )

    @field_validator("authority")
    @classmethod
    def _known_authority(cls, authority: str) -> str:
        if authority not in ("assigned", "request_only"):
            raise ValueError(f"unknown authority {_quoted(authority)} (use assigned or request_only)")
        return authority


class Duty(Strict):
    """One of an agency's duties, followed through mergers and splits to whoever carries it."""

    agency: AsciiId
    duty: AsciiId


class Role(Strict):
    id: RoleId
    name: Text
    per_unit: bool = Field(
        False,
        description="Held in each unit (an outlet's head): in a branch for one unit, only that unit's holder acts.",
    )
    carried_by: Duty | None = Field(
        None,
        description="Held only in the agency that carries this duty on the day (the plan's lead, the press "
        "orientation, the collection of reports each follow their own successor).",
    )


class Language(str, Enum):
    vi = "vi"
    en = "en"


def _outbox_address(value: str) -> str:
    if not _ADDRESS.match(value):
        raise ValueError(
            f"the address {value!r} has a character email headers refuse (a quote, comma, semicolon, bracket or space)"
        )
    return value


class Official(Validity):
    id: AsciiId
    name: OneLine = Field(min_length=1, max_length=200)
    email: Annotated[EmailStr, AfterValidator(_outbox_address)]
    agency: AsciiId
    title: Text
    roles: list[RoleId] = Field(min_length=1)
    language: Annotated[Language, _one_of(Language, "language")] = Language.vi


class UnitOfficials(Strict):
    """Officials made for every unit of some kinds (or named units) that has nobody holding the
    roles: a unit's mailbox rather than a person, e.g. the reporting officer of each of the 65
    communes. `id`, `email` and `name` are templates: {agency} is the unit's id, {agency_vi} and
    {agency_en} its names. They hold office while their unit exists."""

    roles: list[RoleId] = Field(min_length=1)
    kinds: list[Annotated[AgencyKind, _one_of(AgencyKind, "agency kind")]] = []
    agencies: list[AsciiId] = []
    id: str = Field(pattern=r"^[a-z0-9_]*\{agency\}[a-z0-9_]*$")
    email: str = Field(pattern=r"^[^@\s]*\{agency\}[^@\s]*@[^@\s]+$")
    name: str = Field(min_length=1, max_length=120)
    title: Text
    language: Annotated[Language, _one_of(Language, "language")] = Language.vi

    @model_validator(mode="after")
    def _some_units(self) -> UnitOfficials:
        if not self.kinds and not self.agencies:
            raise ValueError("give the kinds of units, or the units (agencies), to make officials for")
        return self

    def made_for(self, agency: Agency) -> Official:
        fill = {"agency": agency.id, "agency_vi": agency.name.vi, "agency_en": agency.name.en}
        return Official(
            id=self.id.format(**fill),
            name=self.name.format(**fill),
            email=self.email.format(**fill).replace("_", "-"),
            agency=agency.id,
            title=self.title,
            roles=list(self.roles),
            language=self.language,
            valid_from=agency.valid_from,
            valid_to=agency.valid_to,
        )


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


class DayOfYear(Strict):
    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)

    @field_validator("day")
    @classmethod
    def _day_in_month(cls, day: int, info: ValidationInfo) -> int:
        month = info.data.get("month")
        if month is not None and not _day_of_year(month, day):
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
    kind: Annotated[StageKind, _one_of(StageKind, "stage kind")]
    acting_agencies: list[AsciiId] = []
    acting_kinds: list[Annotated[AgencyKind, _one_of(AgencyKind, "agency kind")]] = Field(
        [], description="Also every agency of these kinds in force on the day (one branch each)."
    )
    depends_on: list[AsciiId] | None = Field(
        None, description="Stages whose outcome this one needs; default the one before it; [] for none."
    )
    opens_on: DayOfYear | None = Field(None, description="Opens on this day of the cycle's year, not before.")
    approvers: list[RoleId] = []
    policy: Annotated[Policy, _one_of(Policy, "policy")] = Policy.any
    quorum: int | None = Field(None, ge=1)
    due: Due
    reminders_before_days: list[int] = []
    escalate_to: RoleId | None = None
    escalation: Annotated[EscalationMode, _one_of(EscalationMode, "escalation mode")] = EscalationMode.add
    escalation_days: int | None = Field(
        7, ge=1, le=366, description="Days after an escalation before the request expires; null keeps waiting."
    )
    on_timeout: Annotated[TimeoutPolicy, _one_of(TimeoutPolicy, "timeout policy")] | None = Field(
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

    _by_id_cache: dict = PrivateAttr(default_factory=dict)

    def _by_id(self, items: list) -> dict:
        """An index of a list of the plan by id (the first of a duplicated id, as a scan finds).
        Kept with the very list it indexes: a copy of the plan with other officials
        (`model_copy(update=...)`) builds its own."""
        cached = self._by_id_cache.get(id(items))
        if cached is None or cached[0] is not items:
            cached = (items, {item.id: item for item in reversed(items)})
            self._by_id_cache[id(items)] = cached
        return cached[1]

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
        return next(r for r in self.roles if r.id == role_id)

    def official(self, official_id: str) -> Official | None:
        return self._by_id(self.officials).get(official_id)

    def cycle(self, cycle_id: str) -> CycleKind:
        return next(c for c in self.cycles if c.id == cycle_id)

    def holders(self, role_id: str, on: dt.date, *, unit: str | None = None) -> list[Official]:
        """Officials holding a role on a day: both the official and their agency must be valid then.
        For a per-unit role and a unit (a fan-out branch), only holders in the agency carrying
        that unit's duty on the day (itself, or its successor after a merger)."""
        role = next((r for r in self.roles if r.id == role_id), None)
        scoped = unit is not None and role is not None and role.per_unit
        carrier = self.agency_on(unit, on).id if scoped else None
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
