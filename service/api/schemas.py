"""What the coordinators' API reads and accepts: `XRead` answers, `XCreate` inputs.

Inputs are bounded (lengths, dates, list sizes) and cleaned (NFC; no control
characters), so nothing a client sends can reach the database or an email header
unchecked; a bad field is FastAPI's 422 with the field's path.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from approvals.routing.decisions import MAX_COMMENT

ID_PATTERN = r"^[a-z][a-z0-9_]*$"
ROLE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
EARLIEST = dt.date(2000, 1, 1)
LATEST = dt.date(2100, 12, 31)
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]")
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def _text(value: str) -> str:
    value = unicodedata.normalize("NFC", value).replace("\r\n", "\n")
    if _CONTROL_MULTILINE.search(value):
        raise ValueError("must not contain control characters")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _line(value: str) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if _CONTROL_LINE.search(value):
        raise ValueError("must be one line without control characters")
    if not value:
        raise ValueError("must not be blank")
    return value


OfficialId = Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=64)]
RoleId = Annotated[str, StringConstraints(pattern=ROLE_PATTERN, max_length=96)]
Line = Annotated[str, StringConstraints(min_length=1, max_length=300), AfterValidator(_line)]
Reason = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_text)]
RequiredReason = Annotated[
    str, StringConstraints(min_length=1, max_length=2000), AfterValidator(_text), AfterValidator(_not_blank)
]
Description = Annotated[str, StringConstraints(max_length=MAX_COMMENT), AfterValidator(_text)]
Day = Annotated[dt.date, Field(ge=EARLIEST, le=LATEST)]


class Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Create(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description='Where: the part of the request and the field, e.g. ["body", "unit"].')
    msg: str
    type: str = Field(description="Why: `refused` (a rule), or the kind of validation error.")


class ProblemDetails(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ErrorItem] | None = Field(None, description="For a 422: each fault, where and why.")


class AccountRead(Read):
    name: str
    role: str


class CycleStageRead(Read):
    stage: str = Field(description="The stage's id in the plan.")
    number: str
    name: str
    status: str = Field(
        description="waiting, done, rejected, changes_requested, expired, lapsed, skipped, scheduled, not_started;"
        " under_way for the implementation period (stage 6), which has no request of its own."
    )
    updated_at: dt.datetime | None
    requests_total: int = Field(description="Requests of the stage (latest round of each subject).")
    requests_settled: int
    requests_overdue: int


class CycleRestartRead(Read):
    status: str = Field(
        description="queued (the service starts the new run as soon as Prefect lets it), done, or "
        "parked (not restarted: `detail` says why, e.g. its run is alive and the "
        "restart was not forced)."
    )
    asked_at: dt.datetime
    asked_by: str | None
    forced: bool
    attempts: int = Field(description="How many times the service has tried to start the run.")
    detail: str = Field(description="Prefect's last answer, or why it was not restarted.")
    run_id: str | None = Field(None, description="The new run, once started.")
    done_at: dt.datetime | None = None


class CycleRead(Read):
    id: uuid.UUID
    kind: str
    name: str
    period: str
    starts_on: dt.date
    created_at: dt.datetime
    cancelled_at: dt.datetime | None
    flow_runs: list[str] = Field(description="Prefect flow runs that wait on this cycle's requests.")
    run_id: str | None = Field(None, description="The flow run carrying the cycle now.")
    run_state: str | None = Field(None, description="running, waiting or finished, as the run last wrote.")
    attention: str | None = Field(
        None,
        description="Why a coordinator must act (run_failed, run_crashed, "
        "run_finished_open, run_missing); restart it with .../resume.",
    )
    attention_at: dt.datetime | None = None
    attention_detail: str = ""
    restart: CycleRestartRead | None = Field(None, description="The latest restart asked for the cycle, if any.")
    finished_at: dt.datetime | None = None
    shift_days: int = Field(0, description="Days every deadline was moved for a late start.")
    stages: list[CycleStageRead]


class CycleResumeCreate(Create):
    force: bool = Field(False, description="Restart even though its run looks alive (it is cancelled first).")


class CycleResumeRead(Read):
    cycle_id: uuid.UUID
    previous_run: str | None = Field(description="The run carrying the cycle when the restart was asked.")
    restart: CycleRestartRead


class RequestRead(Read):
    id: uuid.UUID
    cycle_id: uuid.UUID
    cycle_kind: str
    period: str
    stage: str
    subject: str
    round: int
    policy: str
    quorum: int | None
    acting_agency: str
    status: str
    due_at: dt.datetime
    overdue: bool
    created_at: dt.datetime
    decided_at: dt.datetime | None
    escalated_at: dt.datetime | None
    expires_at: dt.datetime | None
    reminders_sent: int
    requested_by: str | None
    previous_id: uuid.UUID | None
    waiter_ref: str | None
    waiting_on: list[str] = Field(description="Officials waited on: a pending assignment, or the (re)submission link.")


class AttentionRead(Read):
    """Something only a person can move on, for the coordinators."""

    kind: str = Field(
        description="submission_unrouted or resubmission_unrouted: nobody could be asked to (re)submit the step."
    )
    cycle_id: uuid.UUID
    cycle: str
    request_id: uuid.UUID | None = None
    stage: str | None = None
    subject: str | None = None
    since: dt.datetime | None = None


class AssignmentRead(Read):
    id: uuid.UUID
    official_id: str
    official_name: str | None
    on_behalf_of: str | None
    role: str
    position: int
    status: str
    token_generation: int
    expires_at: dt.datetime
    created_at: dt.datetime
    replaced_by: uuid.UUID | None


class DecisionRead(Read):
    id: uuid.UUID
    assignment_id: uuid.UUID
    official_id: str
    on_behalf_of: str | None
    outcome: str
    comment: str
    decided_at: dt.datetime


class AuditEventRead(Read):
    id: int
    at: dt.datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    data: dict[str, Any]


class RequestHistoryRead(Read):
    request: RequestRead
    assignments: list[AssignmentRead]
    decisions: list[DecisionRead]
    audit: list[AuditEventRead]


class WaitingOnRead(Read):
    official_id: str
    name: str | None
    agency: str | None
    pending: int
    overdue: int
    oldest_due_at: dt.datetime


class ActionRead(Read):
    request_id: uuid.UUID
    action: str
    notified: list[str] = Field(description="Officials sent a new link.")
    emails_queued: int


class RemindManyCreate(Create):
    request_ids: list[uuid.UUID] = Field(min_length=1, max_length=100)


class RemindManyRead(Read):
    reminded: list[ActionRead]


class ReassignCreate(Create):
    to_official: OfficialId


class CycleCancelCreate(Create):
    reason: RequiredReason


class CycleCancelRead(Read):
    cycle_id: uuid.UUID
    cancelled_at: dt.datetime
    expired_requests: list[uuid.UUID]


class DelegationCreate(Create):
    delegator: OfficialId
    delegate: OfficialId
    role: RoleId | None = None
    valid_from: Day
    valid_to: Day
    reason: Reason = ""


class DelegationRead(Read):
    id: uuid.UUID
    delegator: str
    delegate: str
    role: str | None
    valid_from: dt.date
    valid_to: dt.date
    reason: str
    created_by: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class EconomicEventCreate(Create):
    name: Line
    starts_on: Day
    description: Description = ""


class EconomicEventRead(Read):
    id: uuid.UUID
    name: str
    starts_on: dt.date
    description: str
    recorded_by: str
    created_at: dt.datetime
    cycle_id: uuid.UUID | None


class ProblemCreate(Create):
    title: Line
    description: Annotated[str, StringConstraints(min_length=1, max_length=MAX_COMMENT), AfterValidator(_text)]
    unit: Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=64)] = Field(
        description="The agency that raises it (an agency id of the plan)."
    )


class ProblemRead(Read):
    id: uuid.UUID
    title: str
    description: str
    unit: str
    recorded_by: str
    created_at: dt.datetime
    cycle_id: uuid.UUID | None = Field(description="The escalation cycle, once its run has started.")


class SignatureRead(Read):
    """One digital signature of an issued report, as pyHanko's validation found it."""

    field: str = Field(description="`director` (the leader's signature) or `agency` (the issuing body's, its seal).")
    signer: str = Field(description="The certificate's common name.")
    organisation: str | None
    fingerprint: str = Field(description="SHA-256 of the signer's certificate, hex.")
    signed_at: dt.datetime | None = Field(description="The signer's own time, in Vietnam's time zone.")
    timestamp: dt.datetime | None = Field(description="The timestamp authority's time, when a trusted one is there.")
    intact: bool = Field(description="The signed bytes are unchanged, and nothing but what is allowed changed since.")
    modification_level: str | None = Field(description="What changed since: none, form_filling, annotations, other.")
    trusted: bool = Field(description="The certificate chains to the trust roots and was valid at signing time.")
    long_term: bool = Field(description="The document carries the certificate's revocation information (PAdES-B-LT).")
    verdict: str = Field(description="valid, not_trusted, not_valid_at_signing, revoked, modified or invalid.")
    problem: str | None


class ReportSignaturesRead(BaseModel):
    number: str = Field(description='The report\'s number in the register, e.g. "1/BC-SKHCN".')
    test_certificates: bool = Field(description="Signed with test certificates (development, the demo): no force.")
    signatures: list[SignatureRead]
