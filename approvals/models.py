"""Tables of cycles, approval requests, assignments, decisions and the audit log."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from approvals.db import Base, UtcDateTime, utcnow
from approvals.statuses import AssignmentStatus, LinkKind, LinkStatus, RequestStatus, StageStatus, WakeStatus

_big_id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER keys


class Cycle(Base):
    __tablename__ = "cycle"
    __table_args__ = (
        UniqueConstraint("kind", "period"),
        Index(
            "ix_cycle_open",
            "run_state",
            postgresql_where=text("finished_at IS NULL"),
            sqlite_where=text("finished_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(32), doc="'2026' for a yearly cycle, '2026-03' for a monthly one.")
    starts_on: Mapped[dt.date]
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    run_id: Mapped[str | None] = mapped_column(String(64), doc="The flow run carrying the cycle (one at a time).")
    run_state: Mapped[str | None] = mapped_column(String(16), doc="running, waiting or finished, as its run wrote.")
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, doc="Written by the run while it works.")
    attention: Mapped[str | None] = mapped_column(String(64), doc="Why a coordinator must act (run_failed, ...).")
    attention_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    attention_detail: Mapped[str] = mapped_column(Text, default="", server_default="")
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    shift_days: Mapped[int] = mapped_column(
        default=0, server_default="0", doc="Days every deadline was moved by, for a cycle started late."
    )
    restarts: Mapped[int] = mapped_column(default=0, server_default="0")
    rehearsal_speed: Mapped[float | None] = mapped_column(
        Float,
        doc="A rehearsal's pace: planned seconds per wall second (None: a real cycle); clock.deadlines.CycleClock.",
    )
    rehearsal_began: Mapped[dt.datetime | None] = mapped_column(
        UtcDateTime, doc="The wall instant a rehearsal's first planned day began."
    )


class CycleStage(Base):
    __tablename__ = "cycle_stage"
    __table_args__ = (UniqueConstraint("cycle_id", "stage"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    cycle_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cycle.id"))
    stage: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default=StageStatus.waiting.value)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    opened_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, doc="When every branch had been opened.")
    branches: Mapped[int | None]
    opens_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, doc="A scheduled stage opens then.")
    goes_on_at: Mapped[dt.datetime | None] = mapped_column(
        UtcDateTime, doc="A stage the chain leaves at its due time (go_on_at_due): the sweep wakes the run then, once."
    )


class ApprovalRequest(Base):
    __tablename__ = "approval_request"
    __table_args__ = (
        UniqueConstraint("cycle_id", "stage", "subject", "round"),
        Index(
            "ix_approval_request_to_tell",
            "escalated_at",
            postgresql_where=text("told_at IS NULL AND escalated_at IS NOT NULL"),
            sqlite_where=text("told_at IS NULL AND escalated_at IS NOT NULL"),
        ),
    )

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
    previous_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("approval_request.id"), index=True, doc="The round this one re-opens after changes."
    )
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, doc="What was submitted (text, links, amount).")
    reminders_sent: Mapped[int] = mapped_column(default=0)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, doc="When the timeout policy ends it.")
    told_at: Mapped[dt.datetime | None] = mapped_column(
        UtcDateTime,
        doc="When whoever must hear that the step is overdue heard it (its superior, in one email "
        "per stage), or it was escalated to them.",
    )


class Assignment(Base):
    """One official asked to decide one request; their link token and their reply address's token
    are bound to this row (each kept as a hash, both replaced with each new generation)."""

    __tablename__ = "assignment"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("approval_request.id"), index=True)
    official_id: Mapped[str] = mapped_column(String(64))
    on_behalf_of: Mapped[str | None] = mapped_column(String(64), doc="The role holder, when a delegate decides.")
    role: Mapped[str] = mapped_column(String(96))
    position: Mapped[int] = mapped_column(default=0, doc="Order in a sequence policy.")
    replaced_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("assignment.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reply_token_hash: Mapped[str | None] = mapped_column(
        String(64),
        unique=True,
        index=True,
        doc="SHA-256 of the reply address's token, issued with the link's (null on rows made before replies).",
    )
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
    status: Mapped[str] = mapped_column(String(16), default=LinkStatus.pending.value, doc="a LinkStatus")
    kind: Mapped[str] = mapped_column(
        String(16),
        default=LinkKind.resubmission.value,
        server_default=LinkKind.resubmission.value,
        doc="a LinkKind: the step's submission, or one after changes",
    )
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
    __table_args__ = (Index("ix_audit_event_entity", "entity", "entity_id", "action"),)

    id: Mapped[int] = mapped_column(_big_id, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(96))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Wake(Base):
    """Resume the run carrying a cycle at one of its stages: written in the transaction that
    settles the stage (or cancels the cycle, or opens a scheduled stage), delivered by the
    service. One queued wake per stage (a partial unique index). A coordinator's restart of
    the cycle is one too (stage `~restart`): the service starts the new run."""

    __tablename__ = "wake"
    __table_args__ = (
        Index(
            "uq_wake_queued",
            "cycle_id",
            "stage",
            unique=True,
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        Index(
            "ix_wake_due",
            "next_attempt_at",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        Index(
            "ix_wake_parked",
            "created_at",
            postgresql_where=text("status = 'parked'"),
            sqlite_where=text("status = 'parked'"),
        ),
    )

    id: Mapped[int] = mapped_column(_big_id, primary_key=True, autoincrement=True)
    cycle_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cycle.id"))
    stage: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(
        String(32), doc="stage_settled, cycle_cancelled, stage_opens, stage_due, restart or restart_forced"
    )
    status: Mapped[str] = mapped_column(String(16), default=WakeStatus.queued.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    run_id: Mapped[str | None] = mapped_column(String(64), doc="The run it was delivered to (or found).")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    done_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    requested_by: Mapped[str | None] = mapped_column(String(96), doc="Who asked (a restart).")


class RelayCursor(Base):
    """How far the audit log has been relayed (as Prefect events), with a lease for the relayer."""

    __tablename__ = "relay_cursor"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class LinkFailure(Base):
    """One failed link request (an invalid-link answer) from one client: the limit on guessing
    links counts a client's rows in its window, across every web process."""

    __tablename__ = "link_failure"
    __table_args__ = (Index("ix_link_failure_client", "client_key", "at"), Index("ix_link_failure_at", "at"))

    id: Mapped[int] = mapped_column(_big_id, primary_key=True, autoincrement=True)
    client_key: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
