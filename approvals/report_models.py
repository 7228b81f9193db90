"""Tables of the issued consolidated reports: the agency's register of what was issued
(`IssuedReport`), and the director's signatures asked of a remote signing provider
(`RemoteSignature`). The rest of the schema is in `approvals.models` and `notifications.models`."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from approvals.db import Base, UtcDateTime, utcnow


class IssuedReport(Base):
    """The lead agency's consolidated report of a year as issued: numbered when its director
    approved it, written as DOCX and PDF, and emailed to its recipients. One per cycle; a number
    once per symbol and year (the agency's register of reports)."""

    __tablename__ = "issued_report"
    __table_args__ = (UniqueConstraint("symbol", "year", "number"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    cycle_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cycle.id"), unique=True)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("approval_request.id"))
    year: Mapped[int]
    symbol: Mapped[str] = mapped_column(String(40), doc="BC-SKHCN: the part of 'Số: 12/BC-SKHCN' after the number.")
    number: Mapped[int]
    issued_on: Mapped[dt.date]
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    recipients: Mapped[list[dict[str, str]]] = mapped_column(JSON, doc="[{agency, email}] it was emailed to.")
    docx: Mapped[bytes] = mapped_column(LargeBinary)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)


class RemoteSignature(Base):
    """The director's signature of an issued report asked of a remote signing provider, which the
    director confirms on the phone (VNPT SmartCA and the like). The run that issues the report
    asks, then waits (suspended, holding no process); the sweep polls the provider and, once the
    signature came back or the request lapsed, wakes the run, which finishes the signature from
    `state` (pyHanko's interrupted signing). One request at a time per cycle; a lapsed or refused
    one is told to the coordinators once, and a new one is asked when the issue is tried again."""

    __tablename__ = "remote_signature"
    __table_args__ = (
        Index(
            "uq_remote_signature_awaiting",
            "cycle_id",
            unique=True,
            postgresql_where=text("status = 'awaiting'"),
            sqlite_where=text("status = 'awaiting'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    cycle_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cycle.id"), index=True)
    stage: Mapped[str] = mapped_column(String(64), doc="The consolidation stage whose run waits.")
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("approval_request.id"))
    signer: Mapped[str] = mapped_column(String(64), doc="The official who signs (the plan's id).")
    transaction_id: Mapped[str] = mapped_column(String(100), unique=True, doc="Ours, sent to the provider.")
    state: Mapped[dict[str, Any]] = mapped_column(JSON, doc="PendingRemoteSignature.to_json(): the prepared PDF.")
    status: Mapped[str] = mapped_column(String(16), doc="awaiting, signed, lapsed or refused")
    requested_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, doc="When the provider took the request.")
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    next_poll_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    polls: Mapped[int] = mapped_column(default=0)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary, doc="The raw signature value returned.")
    detail: Mapped[str] = mapped_column(Text, default="")
    told_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, doc="When its failure was told.")
