"""The lead agency's consolidated annual report: what every unit asked at the annual-report
stage sent (or did not), gathered from the database, and the document it makes, laid out as
a Vietnamese administrative report (Decree 30/2020/NĐ-CP; `../shared/docs/report-format.md`).

Only data here: `notifications.report_document` writes it as DOCX and PDF.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.deadlines import due_at
from approvals.errors import NotFound
from approvals.models import ApprovalRequest, Cycle, IssuedReport, SubmissionFile, SubmissionLink
from approvals.plan.people import Agency, Official
from approvals.plan.schema import Plan
from approvals.plan.stages import Stage
from approvals.presentation import agency_name
from approvals.statuses import LinkKind, LinkStatus, RequestStatus

ANNUAL = "annual"
REPORT_STAGE = "annual_report"


class UnitStatus:
    approved = "approved"  # its report was accepted by the lead agency
    submitted = "submitted"  # sent, not yet decided
    not_submitted = "not_submitted"  # asked, nothing sent (or never asked: the stage did not reach it)
    changes_requested = "changes_requested"  # sent back: its unit is asked to resubmit
    rejected = "rejected"
    expired = "expired"  # nothing sent by the end
    undecided = "undecided"  # sent, but the step expired before anyone decided on it
    cancelled = "cancelled"

    REPORTED = frozenset({approved, submitted, changes_requested, rejected, undecided})


@dataclass(frozen=True)
class UnitEntry:
    unit: str  # agency id (after mergers: the one that carries the duty)
    name: str
    status: str  # UnitStatus
    request_id: uuid.UUID | None = None
    submitted_at: dt.datetime | None = None
    text: str = ""
    links: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    parts: list[tuple[str, str]] = field(default_factory=list)  # (named field, e.g. a content area; its text)

    @property
    def reported(self) -> bool:
        return self.status in UnitStatus.REPORTED


@dataclass(frozen=True)
class AnnualReport:
    year: int
    on: dt.date  # the day whose units owe the report (today, or the deadline once it has passed)
    # issuer, signer and recipients: those in force on the day the report is written or issued
    deadline: dt.datetime
    issuer: Agency  # the lead agency on that day
    signer: Official | None
    recipients: list[Agency]
    units: list[UnitEntry]

    @property
    def reported(self) -> list[UnitEntry]:
        return [u for u in self.units if u.reported]

    @property
    def missing(self) -> list[UnitEntry]:
        return [u for u in self.units if not u.reported]


def report_stage(plan: Plan) -> Stage | None:
    return plan.stage(ANNUAL, REPORT_STAGE)


def report_units(plan: Plan, on: dt.date) -> list[str]:
    """Every unit that owes the annual report on a day (after mergers: the successor), in plan order."""
    stage = report_stage(plan)
    return plan.branches(stage, on) if stage else []


async def latest_by_unit(session: AsyncSession, plan: Plan, year: int, on: dt.date) -> dict[str, ApprovalRequest]:
    """The latest round of each unit's annual report of a year, keyed by the unit carrying it on `on`."""
    latest: dict[str, ApprovalRequest] = {}
    known = {a.id for a in plan.agencies}
    rows = await session.execute(
        select(ApprovalRequest)
        .join(Cycle, Cycle.id == ApprovalRequest.cycle_id)
        .where(Cycle.kind == ANNUAL, Cycle.period == str(year), ApprovalRequest.stage == REPORT_STAGE)
    )
    for request in rows.scalars():
        unit = request.subject if request.subject in known else request.acting_agency
        unit = plan.agency_on(unit, on).id if unit in known else unit
        if unit not in latest or latest[unit].round < request.round:
            latest[unit] = request
    return latest


def status_of(request: ApprovalRequest | None) -> str:
    if request is None or request.status == RequestStatus.awaiting_submission.value:
        return UnitStatus.not_submitted
    if request.status == RequestStatus.expired.value:  # escalated, then expired: was anything sent?
        return UnitStatus.undecided if request.requested_by and (request.data or {}).get("text") else UnitStatus.expired
    return {RequestStatus.pending.value: UnitStatus.submitted}.get(request.status, request.status)


async def gather(session: AsyncSession, plan: Plan, year: int, *, now: dt.datetime) -> AnnualReport:
    """Every unit that owes the year's report, with what it sent: its text, links and the names of
    its files, and when it sent them; the units that sent nothing are named too."""
    tz = plan.tz
    stage = report_stage(plan)
    if stage is None or plan.report is None:
        raise NotFound("the plan has no annual report stage or no report section")
    deadline = due_at(stage.due, cycle_start=dt.date(year, 1, 1), tz=tz)
    on = min(now.astimezone(tz).date(), deadline.astimezone(tz).date())
    latest = await latest_by_unit(session, plan, year, on)
    ids = [r.id for r in latest.values()]
    sent: dict[uuid.UUID, dt.datetime] = {}
    files: dict[uuid.UUID, list[str]] = {}
    if ids:
        for request_id, used_at in (
            await session.execute(
                select(SubmissionLink.request_id, SubmissionLink.used_at).where(
                    SubmissionLink.request_id.in_(ids),
                    SubmissionLink.kind == LinkKind.first.value,
                    SubmissionLink.status == LinkStatus.used.value,
                )
            )
        ).all():
            sent[request_id] = used_at
        for request_id, name in (
            await session.execute(
                select(SubmissionFile.request_id, SubmissionFile.filename)
                .where(SubmissionFile.request_id.in_(ids))
                .order_by(SubmissionFile.created_at, SubmissionFile.filename)
            )
        ).all():
            files.setdefault(request_id, []).append(name)
    units = []
    named = plan.fields_of(ANNUAL, stage)  # what each unit says for each content area
    owed = report_units(plan, on)
    if latest:  # the stage opened: the units it asked, on the day it opened, are the ones owed
        order = {unit: i for i, unit in enumerate(owed + [a.id for a in plan.agencies])}
        owed = sorted(latest, key=lambda unit: order.get(unit, len(order)))
    for unit in owed:
        request = latest.get(unit)
        status = status_of(request)
        data = (request.data or {}) if request is not None else {}
        submitted_at = None
        if request is not None and status not in (UnitStatus.not_submitted, UnitStatus.expired):
            submitted_at = sent.get(request.id) or request.created_at  # a later round opens when it is resubmitted
        given = data.get("fields", {}) if submitted_at else {}
        units.append(
            UnitEntry(
                unit=unit,
                name=agency_name(plan, unit, "vi"),
                status=status,
                request_id=request.id if request else None,
                submitted_at=submitted_at,
                text=str(data.get("text", "")) if submitted_at else "",
                links=[str(u) for u in data.get("links", [])] if submitted_at else [],
                files=files.get(request.id, []) if request is not None and submitted_at else [],
                parts=[(spec.name.vi, str(given[spec.id])) for spec in named if given.get(spec.id)],
            )
        )
    issuer, signer, recipients = _parties(plan, now.astimezone(tz).date())
    return AnnualReport(year, on, deadline, issuer, signer, recipients, units)


def snapshot(report: AnnualReport) -> dict:
    """The report as JSON, kept with the consolidation step when its draft is submitted: the
    director approves, and the numbered report issues, exactly what the draft showed (a unit
    that reports late reaches next year's figures, not a document already approved)."""
    return {
        "year": report.year,
        "on": report.on.isoformat(),
        "deadline": report.deadline.isoformat(),
        "units": [
            {
                "unit": u.unit,
                "name": u.name,
                "status": u.status,
                "request_id": str(u.request_id) if u.request_id else None,
                "submitted_at": u.submitted_at.isoformat() if u.submitted_at else None,
                "text": u.text,
                "links": list(u.links),
                "files": list(u.files),
                "parts": [list(p) for p in u.parts],
            }
            for u in report.units
        ],
    }


def from_snapshot(plan: Plan, data: dict, *, issued_on: dt.date, signer: str | None = None) -> AnnualReport:
    """The report a snapshot kept, issued on a day: the signer (the official who approved it, else
    the holder of the signer's role that day) and their agency issue it, to the recipients in
    force that day."""
    on = dt.date.fromisoformat(data["on"])
    units = [
        UnitEntry(
            unit=u["unit"],
            name=u["name"],
            status=u["status"],
            request_id=uuid.UUID(u["request_id"]) if u.get("request_id") else None,
            submitted_at=dt.datetime.fromisoformat(u["submitted_at"]) if u.get("submitted_at") else None,
            text=u.get("text", ""),
            links=list(u.get("links", [])),
            files=list(u.get("files", [])),
            parts=[(name, text) for name, text in u.get("parts", [])],
        )
        for u in data["units"]
    ]
    issuer, holder, recipients = _parties(plan, issued_on)
    official = plan.official(signer) if signer else None
    if official is not None:
        issuer, holder = plan.agency(official.agency), official
    return AnnualReport(
        int(data["year"]), on, dt.datetime.fromisoformat(data["deadline"]), issuer, holder, recipients, units
    )


def _parties(plan: Plan, on: dt.date) -> tuple[Agency, Official | None, list[Agency]]:
    """Who issues the report on a day (the signer's agency), who signs it, and who it goes to."""
    stage = report_stage(plan)
    signers = plan.holders(plan.report.signer, on)
    if signers:
        issuer = plan.agency(signers[0].agency)
    elif stage is not None and stage.acting_agencies:
        issuer = plan.agency_on(stage.acting_agencies[0], on, stage.duty)
    else:
        issuer = plan.agency(plan.plan.issuer)
    recipients = [a for r in plan.report.recipients for a in plan.in_force(r, on)]
    return issuer, signers[0] if signers else None, recipients


def symbol_of(issuer: Agency) -> str:
    """The report's symbol in the issuer's register: BC-SKHCN (BC alone without an abbreviation)."""
    return f"BC-{issuer.abbreviation}" if issuer.abbreviation else "BC"


async def next_number(session: AsyncSession, *, symbol: str, year: int) -> int:
    """The next number of the issuer's register of reports for a year (a unique constraint keeps
    two issues from taking the same one)."""
    last = (
        await session.execute(
            select(func.max(IssuedReport.number)).where(IssuedReport.symbol == symbol, IssuedReport.year == year)
        )
    ).scalar()
    return (last or 0) + 1


# The document -----------------------------------------------------------------------------

STATUS_VI = {
    UnitStatus.approved: "Đã báo cáo, đã được chấp thuận",
    UnitStatus.submitted: "Đã báo cáo, đang xem xét",
    UnitStatus.changes_requested: "Đã báo cáo, được đề nghị bổ sung",
    UnitStatus.rejected: "Đã báo cáo, không được chấp thuận",
    UnitStatus.not_submitted: "Chưa báo cáo",
    UnitStatus.expired: "Chưa báo cáo (quá hạn)",
    UnitStatus.undecided: "Đã báo cáo, chưa được xem xét trong hạn",
    UnitStatus.cancelled: "Đã hủy",
}


@dataclass(frozen=True)
class Section:
    heading: str
    paragraphs: list[str]
    links: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReportDocument:
    """A report as Decree 30/2020 lays it out, top to bottom; every text NFC."""

    governing_body: str  # top left, upper case
    issuing_body: str  # under it, upper case, bold
    number: str  # "Số: 12/BC-SKHCN", or with the number left blank in a draft
    place_date: str  # "Lạng Sơn, ngày 05 tháng 12 năm 2026"
    kind: str  # "BÁO CÁO"
    subject: str  # the summary of contents (trích yếu)
    draft: bool
    intro: list[str]
    table_heading: str
    table_header: list[str]
    table: list[list[str]]
    missing: str  # the sentence naming the units that did not report
    sections_heading: str
    sections: list[Section]
    summary_heading: str
    summary: list[str]
    recipients: list[str]  # "- UBND tỉnh;" ... "- Lưu: VT."
    signer_title: str  # "GIÁM ĐỐC"
    signer_name: str

    @property
    def filename_stem(self) -> str:
        return "bao-cao-tong-hop" + ("-du-thao" if self.draft else "")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def vietnamese_date(day: dt.date) -> str:
    """ "ngày 05 tháng 12 năm 2026": day and month below 10 take a leading zero (Decree 30)."""
    return f"ngày {day.day:02d} tháng {day.month:02d} năm {day.year}"


def default_summary(report: AnnualReport) -> str:
    """What the summary says until the coordinator writes their own."""
    reported, total = len(report.reported), len(report.units)
    return (
        f"Năm {report.year}, {reported}/{total} cơ quan, đơn vị đã gửi báo cáo kết quả thực hiện Kế hoạch. "
        f"Các cơ quan, đơn vị chưa gửi báo cáo được nêu tại Mục I; đề nghị UBND tỉnh chỉ đạo các đơn vị "
        f"này báo cáo bổ sung."
    )


def document(
    plan: Plan, report: AnnualReport, *, summary: str, issued_on: dt.date, number: int | None
) -> ReportDocument:
    """The report's layout and words (Vietnamese, the language of the province's documents)."""
    tz = plan.tz
    spec = plan.report
    issuer = report.issuer
    symbol = symbol_of(issuer)
    table = [
        [
            str(i),
            u.name,
            STATUS_VI.get(u.status, u.status),
            u.submitted_at.astimezone(tz).strftime("%d/%m/%Y") if u.submitted_at else "—",
        ]
        for i, u in enumerate(report.units, start=1)
    ]
    missing = [u.name for u in report.missing]
    sections = []
    for i, unit in enumerate(report.reported, start=1):
        paragraphs = [p.strip() for p in unit.text.split("\n") if p.strip()] or ["(Không có nội dung.)"]
        paragraphs += [f"{name}: {' '.join(text.split())}" for name, text in unit.parts]
        sections.append(Section(f"{i}. {unit.name}", paragraphs, unit.links, unit.files))
    recipients = [f"- {a.name.vi};" for a in report.recipients] + ["- Lưu: VT."]
    title = plan.plan.title.vi
    words = dict(
        governing_body=spec.governing_body.upper(),
        issuing_body=issuer.name.vi.upper(),
        number=f"Số: {number}/{symbol}" if number is not None else f"Số:        /{symbol}",
        place_date=f"{spec.place}, {vietnamese_date(issued_on)}",
        kind="BÁO CÁO",
        subject=f"Kết quả thực hiện {title[0].lower() + title[1:]} năm {report.year}",
        draft=number is None,
        intro=[
            f"Thực hiện {title} ({plan.plan.legal_basis}), {issuer.name.vi} tổng hợp báo cáo kết quả thực hiện "
            f"năm {report.year} của các cơ quan, đơn vị gửi qua {issuer.name.vi} đến ngày "
            f"{report.deadline.astimezone(tz).strftime('%d/%m/%Y')} như sau:"
        ],
        table_heading="I. TÌNH HÌNH BÁO CÁO CỦA CÁC CƠ QUAN, ĐƠN VỊ",
        table_header=["STT", "Cơ quan, đơn vị", "Tình trạng", "Ngày gửi"],
        table=table,
        missing=(
            f"Có {len(report.reported)}/{len(report.units)} cơ quan, đơn vị đã gửi báo cáo. "
            + (
                f"Các cơ quan, đơn vị chưa gửi báo cáo: {'; '.join(missing)}."
                if missing
                else "Tất cả các cơ quan, đơn vị đã gửi báo cáo."
            )
        ),
        sections_heading="II. KẾT QUẢ THỰC HIỆN CỦA CÁC CƠ QUAN, ĐƠN VỊ",
        sections=sections,
        summary_heading="III. ĐÁNH GIÁ CHUNG VÀ ĐỀ XUẤT",
        summary=[p.strip() for p in summary.split("\n") if p.strip()],
        recipients=recipients,
        signer_title=spec.signer_title.vi.upper(),
        signer_name=report.signer.name if report.signer else "",
    )
    return ReportDocument(**{k: _deep_nfc(v) for k, v in words.items()})


def _deep_nfc(value):
    if isinstance(value, str):
        return _nfc(value)
    if isinstance(value, list):
        return [_deep_nfc(v) for v in value]
    if isinstance(value, Section):
        return Section(_nfc(value.heading), _deep_nfc(value.paragraphs), _deep_nfc(value.links), _deep_nfc(value.files))
    return value
