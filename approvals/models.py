"""Tables of cycles, approval requests, assignments, decisions and the audit log."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import Enum

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from approvals.db import Base, UtcDateTime, utcnow

_big_id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER keys


class StageStatus(str, Enum):
    waiting = "waiting"
    done = "done"
    rejected = "rejected"
    changes_requested = "changes_requested"
    expired = "expired"


class RequestStatus(str, Enum):
    awaiting_submission = "awaiting_submission"  # the acting agency has not submitted yet: nobody decides
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    changes_requested = "changes_requested"
    expired = "expired"  # the timeout policy ended it: never an approval

    @property
    def open(self) -> bool:
        return self in (RequestStatus.awaiting_submission, RequestStatus.pending)


class AssignmentStatus(str, Enum):
    waiting = "waiting"  # in a sequence, not asked yet
    pending = "pending"
    decided = "decided"
    revoked = "revoked"  # handed over on escalation
    reassigned = "reassigned"  # a coordinator moved it to someone else
    closed = "closed"  # the request reached its outcome through someone else


class Outcome(str, Enum):
    approve = "approve"
    reject = "reject"
    request_changes = "request_changes"


OUTCOME_TO_STATUS = {
    Outcome.approve: RequestStatus.approved,
    Outcome.reject: RequestStatus.rejected,
    Outcome.request_changes: RequestStatus.changes_requested,
}


class Cycle(Base):
    __tablename__ = "cycle"
    __table_args__ = (UniqueConstraint("kind", "period"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(32), doc="'2026' for a yearly cycle, '2026-03' for a monthly one.")
    starts_on: Mapped[dt.date]
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class CycleStage(Base):
    __tablename__ = "cycle_stage"
    __table_args__ = (UniqueConstraint("cycle_id", "stage"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    cycle_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cycle.id"))
    stage: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default=StageStatus.waiting.value)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class ApprovalRequest(Base):
    __tablename__ = "approval_request"
    __table_args__ = (UniqueConstraint("cycle_id", "stage", "subject", "round"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    cycle_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cycle.id"))
    stage: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(64), default="", doc="Which branch: '' or an outlet id.")
    round: Mapped[int] = mapped_column(default=1)
    policy: Mapped[str] = mapped_column(String(32))
    quorum: Mapped[int | None]
    acting_agency: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default=RequestStatus.pending.value, index=True)
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    waiter_ref: Mapped[str | None] = mapped_column(String(64), doc="The flow run waiting on this request.")
    resumed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    requested_by: Mapped[str | None] = mapped_column(String(64), doc="The official who submitted the step.")
    previous_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("approval_request.id"),
                                                          doc="The round this one re-opens after changes.")
    data: Mapped[dict] = mapped_column(JSON, default=dict, doc="What was submitted (text, links, amount).")
    reminders_sent: Mapped[int] = mapped_column(default=0)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, doc="When the timeout policy ends it.")


class Assignment(Base):
    """One official asked to decide one request; their link token is bound to this row."""

    __tablename__ = "assignment"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("approval_request.id"), index=True)
    official_id: Mapped[str] = mapped_column(String(64))
    on_behalf_of: Mapped[str | None] = mapped_column(String(64), doc="The role holder, when a delegate decides.")
    role: Mapped[str] = mapped_column(String(96))
    position: Mapped[int] = mapped_column(default=0, doc="Order in a sequence policy.")
    replaced_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("assignment.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_generation: Mapped[int] = mapped_column(default=1)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(32), default=AssignmentStatus.pending.value)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class Decision(Base):
    __tablename__ = "decision"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("approval_request.id"), index=True)
    assignment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("assignment.id"), unique=True)
    official_id: Mapped[str] = mapped_column(String(64))
    on_behalf_of: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class Delegation(Base):
    """A delegation made through the API (the plan file's own are read from the plan)."""

    __tablename__ = "delegation"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    delegator: Mapped[str] = mapped_column(String(64), index=True)
    delegate: Mapped[str] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(96))
    valid_from: Mapped[dt.date]
    valid_to: Mapped[dt.date]
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class ApiAccount(Base):
    """A coordinator's or viewer's API account; only the SHA-256 of its token is kept."""

    __tablename__ = "api_account"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(96), unique=True)
    role: Mapped[str] = mapped_column(String(16), doc="coordinator or viewer")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class EconomicEvent(Base):
    """An event (a trade fair, a campaign) for which a per-event economy cycle is started."""

    __tablename__ = "economic_event"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(300))
    starts_on: Mapped[dt.date]
    description: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    cycle_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cycle.id"))


class ProblemReport(Base):
    """A problem a unit raises with the PPC (stage E of the plan), for which an escalation cycle is started."""

    __tablename__ = "problem_report"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(String(64), doc="The agency that raises it.")
    recorded_by: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    cycle_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cycle.id"))


class SubmissionLink(Base):
    """A link asking an official of the acting agency to (re)submit a step."""

    __tablename__ = "submission_link"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("approval_request.id"), index=True)
    official_id: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_generation: Mapped[int] = mapped_column(default=1)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default="pending", doc="pending, used or closed")
    kind: Mapped[str] = mapped_column(String(16), default="resubmission", server_default="resubmission",
                                      doc="first (the step's submission) or resubmission (after changes)")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class SubmissionFile(Base):
    """A file submitted with a step (a plan, a report), kept in its own table, out of the request row."""

    __tablename__ = "submission_file"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("approval_request.id"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class AuditEvent(Base):
    """Append-only; each row carries the hash of the one before it."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(_big_id, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(96))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
