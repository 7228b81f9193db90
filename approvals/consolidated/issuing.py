"""Issuing the consolidated report once its director approved it, in Decree 30/2020's order
(Art. 13-15): the director who approved it signs the PDF, its number and date left blank; the
agency's register gives the next number and the date, written in; the issuing agency signs
last, its seal shown (`approvals.signing.issued_report`). Then the email to each recipient, the
signed PDF as the original and the DOCX as an editable copy marked as such (`send`), and the
record, with each signature in the audit log.

Once per cycle, however often the run replays or a worker dies halfway: the number, the seal,
the emails and the record commit in one transaction, and the cycle's row in `issued_report` is
unique. A signature that cannot be made (no signer, a wrong PIN, an expired certificate, a
timestamp authority down) raises before anything is issued, so the run can try again."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass, replace
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit
from approvals.clock.deadlines import CycleClock, clock_of
from approvals.consolidated.document import ReportDocument, awaiting_number, document, symbol_of
from approvals.consolidated.files import DOCX_TYPE, PDF_TYPE, file_stem, to_docx
from approvals.consolidated.pdf_file import PdfLayout, pdf_with_layout
from approvals.consolidated.remote_director import Asking, signed_by_remote_director
from approvals.consolidated.units import AnnualReport, from_snapshot
from approvals.db import Database, utcnow
from approvals.errors import NotFound
from approvals.models import ApprovalRequest, Cycle, Decision
from approvals.plan.schema import Plan
from approvals.report_models import IssuedReport
from approvals.signing.issued_report import agency_sealed, director_signed, remote_director
from approvals.signing.signers import Signers
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


async def issue(
    db: Database,
    *,
    plan: Plan,
    cycle_id: uuid.UUID,
    stage_id: str,
    send: Send,
    signers: Signers,
    remote_expires_after: dt.timedelta = dt.timedelta(minutes=15),
) -> Issued | None:
    """The cycle's consolidated report as issued: signed by its director, numbered, sealed by its
    agency, sent (`send`) and recorded, the first time; what was issued, every time after. None
    while a director who signs on the phone has not confirmed yet (`remote_director`): asked,
    the run waits and is woken once they answered."""
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
    if signer is None:
        raise NotFound(f"no approval of the consolidated report in cycle {cycle_id} names who signs it")
    symbol = symbol_of(report.issuer)
    summary = str(request.data.get("text", ""))

    def words(number: int | None) -> ReportDocument:
        return document(plan, report, summary=summary, issued_on=issued_on, number=number, clock=clock)

    async def unsigned() -> tuple[bytes, PdfLayout]:
        return await asyncio.to_thread(pdf_with_layout, awaiting_number(words(None)), number_and_date_as_fields=True)

    # The director signs before the register's transaction: a token or a timestamp authority may
    # take seconds, and two runs racing both sign, harmlessly (one issues).
    if remote_director(signers, signer) is None:
        pdf, layout = await unsigned()
        by_director, director_signature = await director_signed(pdf, layout, signers=signers, official_id=signer)
    else:
        asking = Asking(
            cycle_id=cycle_id,
            stage=stage_id,
            request_id=request.id,
            official_id=signer,
            description=f"Ký số báo cáo {symbol} năm {report.year}",
            expires_after=remote_expires_after,
        )
        signed = await signed_by_remote_director(db, asking, unsigned=unsigned, signers=signers)
        if signed is None:
            return None
        by_director, director_signature = signed
        _, layout = await unsigned()  # where the seal goes: the same document's layout
    async with db.transaction() as session:
        issued = await _issued(session, cycle_id)
        if issued is not None:  # another run issued it meanwhile
            return Issued(issued.number, issued.symbol, issued.recipients, new=False)
        number = await next_number(session, symbol=symbol, year=report.year)
        written = words(number)
        pdf, agency_signature = await agency_sealed(
            by_director,
            layout,
            signers=signers,
            agency_id=report.issuer.id,
            number=written.number,
            place_date=written.place_date,
        )
        docx = await asyncio.to_thread(to_docx, replace(written, editable_copy=True))
        stem = file_stem(written, year=report.year)
        files = [(f"{stem}.docx", DOCX_TYPE, docx), (f"{stem}.pdf", PDF_TYPE, pdf)]
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
        for made in (director_signature, agency_signature):
            await audit.append(
                session,
                actor=made.by,
                action="report.signed",
                entity="approval_request",
                entity_id=str(request.id),
                data={**made.audit(), "number": f"{number}/{symbol}"},
            )
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
                "files": [name for name, _, _ in files],
                "signed_pdf_sha256": agency_signature.digest,
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
