"""Issuing the lead agency's consolidated report once its director approved it: the number of
the agency's register, the DOCX and PDF with it, the email to each recipient with both
attached, and the record. Once per cycle, however often the run replays or a worker dies
halfway (one transaction; the cycle's row in `issued_report` is unique)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from prefect import task
from prefect.logging import get_run_logger
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from approvals import audit, consolidated
from approvals.config import Settings, get_settings
from approvals.db import Database, utcnow
from approvals.errors import NotFound
from approvals.models import ApprovalRequest, Decision, IssuedReport
from approvals.plan import Plan, load_plan
from approvals.statuses import Outcome, RequestStatus
from flows.stages import STEP, cycle_of, database
from notifications.emails import Emails
from notifications.render import Renderer, shared_renderer
from notifications.report_document import report_files


@task(name="issue-report", **STEP)
async def issue_report(*, cycle_kind: str, period: str, stage_id: str) -> dict:
    """Number, write, send and record the approved consolidated report of a cycle (once)."""
    settings = get_settings()
    async with database(settings) as db:
        async with db.reads() as session:
            cycle = await cycle_of(session, cycle_kind, period)
        issued = await issue(
            db,
            plan=load_plan(settings.plan_file),
            settings=settings,
            renderer=shared_renderer(),
            cycle_id=cycle.id,
            stage_id=stage_id,
        )
    if issued.new:
        get_run_logger().info(
            "Report %s/%s of %s/%s issued to %d recipient(s)",
            issued.number,
            issued.symbol,
            cycle_kind,
            period,
            len(issued.recipients),
        )
    return {"number": issued.number, "symbol": issued.symbol, "new": issued.new}


@dataclass(frozen=True)
class Issued:
    number: int
    symbol: str
    recipients: list[dict]
    new: bool  # issued by this call (else found issued)


async def issue(
    db: Database, *, plan: Plan, settings: Settings, renderer: Renderer, cycle_id: uuid.UUID, stage_id: str
) -> Issued:
    """The cycle's consolidated report as issued: numbered, written, queued to every recipient
    and recorded in one transaction, the first time; what was issued, every time after."""
    async with db.reads() as session:
        issued = await _issued(session, cycle_id)
        if issued is None:
            request, signer = await _approved(session, cycle_id, stage_id)
    if issued is not None:
        return Issued(issued.number, issued.symbol, issued.recipients, new=False)
    if request is None:
        raise NotFound(f"no approved consolidated report in cycle {cycle_id}")
    issued_on = (request.decided_at or utcnow()).astimezone(plan.tz).date()
    report = consolidated.from_snapshot(plan, request.data["report"], issued_on=issued_on, signer=signer)
    symbol = consolidated.symbol_of(report.issuer)
    async with db.transaction() as session:
        issued = await _issued(session, cycle_id)
        if issued is not None:  # another run issued it meanwhile
            return Issued(issued.number, issued.symbol, issued.recipients, new=False)
        number = await consolidated.next_number(session, symbol=symbol, year=report.year)
        document = consolidated.document(
            plan, report, summary=str(request.data.get("text", "")), issued_on=issued_on, number=number
        )
        files = await asyncio.to_thread(report_files, document, year=report.year)
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
        await Emails.of(plan, settings, renderer).report_issued(
            session, cycle_id=cycle_id, report=report, document=document, files=files
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
                "files": [docx_name, pdf_name],
            },
        )
    return Issued(number, symbol, to, new=True)


async def _issued(session: AsyncSession, cycle_id) -> IssuedReport | None:
    return (await session.execute(select(IssuedReport).where(IssuedReport.cycle_id == cycle_id))).scalar()


async def _approved(session: AsyncSession, cycle_id, stage_id: str) -> tuple[ApprovalRequest | None, str | None]:
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
