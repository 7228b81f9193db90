"""What a rehearsed year did, read from its database at the end: the steps, the decisions, the
send-backs, the reminders, escalations and overdue notices, the silent units, the emails, and
the issued report."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.models import ApprovalRequest, AuditEvent, Cycle, Decision
from approvals.report_models import IssuedReport
from approvals.statuses import RequestStatus
from flows.cadences import MONTHLY_KIND
from notifications.models import MessageStatus, OutboxMessage

REPORT_STAGE = "annual_report"


@dataclass(frozen=True)
class YearSummary:
    steps: int  # a stage's branch, whatever its rounds
    rounds: int  # requests, a resubmission being a round of its own
    decisions: dict[str, int]  # outcome -> count
    reminders: int
    escalations: int
    overdue_notices: int
    expired: int
    silent_units: list[str]
    emails: int
    months: tuple[int, int]  # the culture-society cycles started in the rehearsal, and those finished
    report: str | None  # the issued report's number, e.g. "12/BC-SKHCN"

    @property
    def send_backs(self) -> int:
        return self.decisions.get("request_changes", 0)


async def issued_report(session: AsyncSession, cycle_id: uuid.UUID) -> str | None:
    """The number of the cycle's issued consolidated report, or None before it is issued."""
    issued = (await session.execute(select(IssuedReport).where(IssuedReport.cycle_id == cycle_id))).scalar()
    return f"{issued.number}/{issued.symbol}" if issued else None


async def report_emails_unsent(session: AsyncSession) -> int:
    """The issued report's emails not yet handed to the mail server (queued, or being sent)."""
    return (
        await session.execute(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.kind == "report_issued",
                OutboxMessage.status.in_((MessageStatus.queued.value, MessageStatus.sending.value)),
            )
        )
    ).scalar_one()


async def summarise(session: AsyncSession, cycle_id: uuid.UUID) -> YearSummary:
    requests = list(
        (await session.execute(select(ApprovalRequest).where(ApprovalRequest.cycle_id == cycle_id))).scalars()
    )
    ids = [str(r.id) for r in requests]
    actions = Counter(
        dict(
            (
                await session.execute(
                    select(AuditEvent.action, func.count())
                    .where(AuditEvent.entity == "approval_request", AuditEvent.entity_id.in_(ids))
                    .group_by(AuditEvent.action)
                )
            ).all()
        )
    )
    decisions = dict(
        (
            await session.execute(
                select(Decision.outcome, func.count())
                .join(ApprovalRequest, ApprovalRequest.id == Decision.request_id)
                .where(ApprovalRequest.cycle_id == cycle_id)
                .group_by(Decision.outcome)
            )
        ).all()
    )
    latest: dict[tuple[str, str], ApprovalRequest] = {}
    for r in sorted(requests, key=lambda r: r.round):
        latest[(r.stage, r.subject)] = r
    silent = sorted(
        subject
        for (stage, subject), r in latest.items()
        if stage == REPORT_STAGE and r.requested_by is None and r.status != RequestStatus.approved.value
    )
    emails = (await session.execute(select(func.count()).select_from(OutboxMessage))).scalar_one()
    months = list(
        (
            await session.execute(
                select(Cycle.finished_at).where(Cycle.kind == MONTHLY_KIND, Cycle.rehearsal_speed > 0)
            )
        ).scalars()
    )
    return YearSummary(
        steps=len(latest),
        rounds=len(requests),
        decisions=decisions,
        reminders=actions["request.reminded"] + actions["submission.reminded"],
        escalations=sum(1 for r in requests if r.escalated_at is not None),
        overdue_notices=actions["request.overdue"],
        expired=sum(1 for r in requests if r.status == RequestStatus.expired.value),
        silent_units=silent,
        emails=emails,
        months=(len(months), sum(1 for f in months if f is not None)),
        report=await issued_report(session, cycle_id),
    )
