"""The consolidated annual report as a file, for the API and the dashboard alike."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import select

from approvals import consolidated
from approvals.clock.deadlines import CycleClock, clock_of
from approvals.consolidated.files import DOCX_TYPE, PDF_TYPE, file_stem, to_docx, to_pdf
from approvals.db import utcnow
from approvals.errors import NotFound
from approvals.models import Cycle
from approvals.report_models import IssuedReport, RemoteSignature
from approvals.signing.signers import signers_for
from approvals.signing.verification import SignatureCheck, verify

FORMATS = {"docx": (DOCX_TYPE, to_docx), "pdf": (PDF_TYPE, to_pdf)}


@dataclass(frozen=True)
class ReportFile:
    data: bytes
    media_type: str
    filename: str

    @property
    def disposition(self) -> str:
        return f'attachment; filename="{self.filename}"'


def draft_document(
    app, report: consolidated.AnnualReport, *, now, clock: CycleClock, summary: str = ""
) -> consolidated.ReportDocument:
    """The report as a draft dated today (on the cycle's calendar), without a number; the summary
    suggested unless given."""
    return consolidated.document(
        app.plan,
        report,
        summary=summary or consolidated.default_summary(report),
        issued_on=clock.dated(now).astimezone(app.plan.tz).date(),
        number=None,
        clock=clock,
    )


async def year_clock(session, plan, year: int) -> CycleClock:
    """The clock of the year's annual cycle (shifted or rehearsed), or the plan's own where it has none."""
    cycle = (
        await session.execute(select(Cycle).where(Cycle.kind == consolidated.ANNUAL, Cycle.period == str(year)))
    ).scalar()
    return clock_of(plan, cycle) if cycle is not None else CycleClock()


async def annual_report_file(app, year: int, fmt: str, *, draft: bool = False) -> ReportFile:
    """The year's report: as issued (numbered, as it was sent) once its director approved it;
    before that, or asked for a draft, as it stands, without a number (NotFound: the plan
    has none)."""
    now = utcnow()
    async with app.db.reads() as session:
        issued = None if draft else await issued_report(session, year)
        if issued is not None:
            return issued_file(issued, fmt)
        report = await consolidated.gather(session, app.plan, year, now=now)
        clock = await year_clock(session, app.plan, year)
    document = draft_document(app, report, now=now, clock=clock)
    media_type, write = FORMATS[fmt]
    data = await asyncio.to_thread(write, document)  # a few hundred ms of CPU: not on the event loop
    return ReportFile(data, media_type, f"{file_stem(document, year=year)}.{fmt}")


async def issued_report(session, year: int) -> IssuedReport | None:
    """The year's annual report as issued, or None before it is."""
    return (
        await session.execute(
            select(IssuedReport)
            .join(Cycle, Cycle.id == IssuedReport.cycle_id)
            .where(Cycle.kind == consolidated.ANNUAL, Cycle.period == str(year))
        )
    ).scalar()


async def signature_asked(session, year: int) -> RemoteSignature | None:
    """The latest signature of the year's report asked of its director on the phone (remote
    signing), while the report is not issued: what the coordinators see it wait on."""
    return (
        await session.execute(
            select(RemoteSignature)
            .join(Cycle, Cycle.id == RemoteSignature.cycle_id)
            .outerjoin(IssuedReport, IssuedReport.cycle_id == Cycle.id)
            .where(Cycle.kind == consolidated.ANNUAL, Cycle.period == str(year), IssuedReport.id.is_(None))
            .order_by(RemoteSignature.requested_at.desc())
            .limit(1)
        )
    ).scalar()


def issued_file(issued: IssuedReport, fmt: str) -> ReportFile:
    """The issued report's signed PDF, or its DOCX copy, as it was sent."""
    return ReportFile(
        issued.docx if fmt == "docx" else issued.pdf,
        FORMATS[fmt][0],
        f"bao-cao-tong-hop-{issued.year}-so-{issued.number}.{fmt}",
    )


@dataclass(frozen=True)
class IssuedSignatures:
    number: str  # "1/BC-SKHCN"
    test_certificates: bool
    signatures: list[SignatureCheck]


async def issued_signatures(app, year: int) -> IssuedSignatures:
    """The issued report's signatures checked against the configured trust roots (NotFound: the
    year's report is not issued)."""
    async with app.db.reads() as session:
        issued = await issued_report(session, year)
    if issued is None:
        raise NotFound(f"the consolidated report of {year} is not issued")
    signers = signers_for(app.settings, app.plan)

    def check() -> list[SignatureCheck]:  # pyHanko's validation blocks: off the event loop
        return verify(issued.pdf, trust_roots=signers.trust_roots())

    checks = await asyncio.to_thread(check)
    test = signers.test or any(c.by_test_certificate for c in checks)
    return IssuedSignatures(f"{issued.number}/{issued.symbol}", test, checks)
