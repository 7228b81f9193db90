"""Issuing the consolidated report once its director approved it: the next number of the
agency's register, the DOCX and PDF with it, the email to each recipient with both attached
(`send`), and the record. Once per cycle, however often the run replays or a worker dies
halfway: one transaction, and the cycle's row in `issued_report` is unique."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.clock.deadlines import CycleClock, clock_of
from approvals.consolidated.document import ReportDocument, document, symbol_of
from approvals.consolidated.files import report_files
from approvals.consolidated.units import AnnualReport, from_snapshot
from approvals.db import Database, utcnow
from approvals.errors import NotFound
from approvals.models import ApprovalRequest, Cycle, Decision, IssuedReport
from approvals.plan.schema import Plan
from approvals.statuses import Outcome, RequestStatus


async def next_number(session: AsyncSession, *, symbol: str, year: int) -> int:
    """The next number of the issuer's register of reports for a year (a unique constraint keeps
    two issues from taking the same one)."""
    last = (
        await session.execute(
            select(func.max(IssuedReport.number)).where(IssuedReport.symbol == symbol, IssuedReport.year == year)
        )
    ).scalar()
    return (last or 0) + 1


@dataclass(frozen=True)
class Issued:
    number: int
    symbol: str
    recipients: list[dict[str, str]]  # {agency, email} each
    new: bool  # issued by this call (else found issued)


class Send(Protocol):
    """Queues the issued report to its recipients, in the transaction that issues it
    (`notifications.emails.Emails.report_issued`)."""

    async def __call__(
        self,
        session: AsyncSession,
        *,
        cycle_id: uuid.UUID,
        report: AnnualReport,
        document: ReportDocument,
        files: list[tuple[str, str, bytes]],
    ) -> int: ...


async def issue(db: Database, *, plan: Plan, cycle_id: uuid.UUID, stage_id: str, send: Send) -> Issued:
    """The cycle's consolidated report as issued: numbered, written, sent (`send`) and recorded in
    one transaction, the first time; what was issued, every time after."""
    async with db.reads() as session:
        issued = await _issued(session, cycle_id)
        if issued is None:
            request, signer = await _approved(session, cycle_id, stage_id)
            cycle = await session.get(Cycle, cycle_id)
            clock = clock_of(plan, cycle) if cycle is not None else CycleClock()
    if issued is not None:
        return Issued(issued.number, issued.symbol, issued.recipients, new=False)
    if request is None:
        raise NotFound(f"no approved consolidated report in cycle {cycle_id}")
    # Dated on the cycle's own calendar: a rehearsal's report carries the rehearsed day.
    issued_on = clock.dated(request.decided_at or utcnow()).astimezone(plan.tz).date()
    report = from_snapshot(plan, request.data["report"], issued_on=issued_on, signer=signer)
    symbol = symbol_of(report.issuer)
    async with db.transaction() as session:
        issued = await _issued(session, cycle_id)
        if issued is not None:  # another run issued it meanwhile
            return Issued(issued.number, issued.symbol, issued.recipients, new=False)
        number = await next_number(session, symbol=symbol, year=report.year)
        written = document(
            plan, report, summary=str(request.data.get("text", "")), issued_on=issued_on, number=number, clock=clock
        )
        files = await asyncio.to_thread(report_files, written, year=report.year)
        (docx_name, _, docx), (pdf_name, _, pdf) = files
        to = [{"agency": a.id, "email": str(a.email)} for a in report.recipients if a.email]
        session.add(
            IssuedReport(
                cycle_id=cycle_id,
                request_id=request.id,
                year=report.year,
                symbol=symbol,
                number=number,
                issued_on=issued_on,
                issued_at=utcnow(),
                recipients=to,
                docx=docx,
                pdf=pdf,
            )
        )
        await session.flush()
        await send(session, cycle_id=cycle_id, report=report, document=written, files=files)
        await audit.append(
            session,
            actor="system",
            action="report.issued",
            entity="approval_request",
            entity_id=str(request.id),
            data={
                "number": f"{number}/{symbol}",
                "year": report.year,
                "recipients": to,
                "units": len(report.units),
                "reported": len(report.reported),
                "files": [docx_name, pdf_name],
            },
        )
    return Issued(number, symbol, to, new=True)


async def _issued(session: AsyncSession, cycle_id: uuid.UUID) -> IssuedReport | None:
    return (await session.execute(select(IssuedReport).where(IssuedReport.cycle_id == cycle_id))).scalar()


async def _approved(
    session: AsyncSession, cycle_id: uuid.UUID, stage_id: str
) -> tuple[ApprovalRequest | None, str | None]:
    """The approved round of the consolidation step (a round sent back is not), and the official
    whose approval settled it (who signs)."""
    request = (
        await session.execute(
            select(ApprovalRequest)
            .where(
                ApprovalRequest.cycle_id == cycle_id,
                ApprovalRequest.stage == stage_id,
                ApprovalRequest.status == RequestStatus.approved.value,
            )
            .order_by(ApprovalRequest.round.desc())
            .limit(1)
        )
    ).scalar()
    if request is None:
        return None, None
    signer = (
        await session.execute(
            select(Decision.official_id)
            .where(Decision.request_id == request.id, Decision.outcome == Outcome.approve.value)
            .order_by(Decision.decided_at.desc())
            .limit(1)
        )
    ).scalar()
    return request, signer
