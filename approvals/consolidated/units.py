"""The consolidated report's data: every unit asked at the annual-report stage, what it sent
(or did not) and when, gathered from the database; who issues it, signs it and receives it;
and the snapshot the consolidation step keeps of it."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from approvals.clock.deadlines import due_at
from approvals.errors import NotFound
from approvals.models import ApprovalRequest, Cycle, SubmissionFile, SubmissionLink
from approvals.plan.people import Agency, Official
from approvals.plan.schema import Plan, ReportSpec
from approvals.plan.stages import Stage
from approvals.statuses import LinkKind, LinkStatus, RequestStatus
from approvals.wording.presentation import agency_name

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


def report_spec(plan: Plan) -> ReportSpec:
    """The plan's report section; NotFound without one (as `gather` answers)."""
    if plan.report is None:
        raise NotFound("the plan has no report section")
    return plan.report


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
    sent: dict[uuid.UUID, dt.datetime | None] = {}
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


def snapshot(report: AnnualReport) -> dict[str, Any]:
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


def from_snapshot(plan: Plan, data: dict[str, Any], *, issued_on: dt.date, signer: str | None = None) -> AnnualReport:
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
    spec = report_spec(plan)
    signers = plan.holders(spec.signer, on)
    if signers:
        issuer = plan.agency(signers[0].agency)
    elif stage is not None and stage.acting_agencies:
        issuer = plan.agency_on(stage.acting_agencies[0], on, stage.duty)
    else:
        issuer = plan.agency(plan.plan.issuer)
    recipients = [a for r in spec.recipients for a in plan.in_force(r, on)]
    return issuer, signers[0] if signers else None, recipients
