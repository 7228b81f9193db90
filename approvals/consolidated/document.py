"""The consolidated report's words and layout: a Vietnamese administrative report (Decree
30/2020/NĐ-CP; `../shared/docs/report-format.md`), as data that `files` writes as DOCX and PDF."""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass, field, fields, replace
from typing import Any

from approvals.clock.deadlines import CycleClock
from approvals.consolidated.units import AnnualReport, UnitStatus, report_spec
from approvals.plan.people import Agency
from approvals.plan.schema import Plan


def symbol_of(issuer: Agency) -> str:
    """The report's symbol in the issuer's register: BC-SKHCN (BC alone without an abbreviation)."""
    return f"BC-{issuer.abbreviation}" if issuer.abbreviation else "BC"


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


REHEARSAL_MARK = "BẢN DIỄN TẬP - KHÔNG CÓ GIÁ TRỊ THỰC HIỆN"
# The issued report's DOCX: the signed PDF is the original (Decree 30/2020), this one is for editing.
EDITABLE_COPY_MARK = "BẢN ĐỂ CHỈNH SỬA, KHÔNG PHẢI BẢN GỐC - BẢN GỐC LÀ TỆP PDF CÓ CHỮ KÝ SỐ"
AS_PLANNED = CycleClock()


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
    rehearsal: bool = False  # a rehearsal's report says so above its kind, and has no force
    editable_copy: bool = False  # the issued report's DOCX beside its signed PDF: says it is not the original

    @property
    def marks(self) -> list[str]:
        """What stands above the document's kind: a draft's "DỰ THẢO", a rehearsal's notice, an
        editable copy's."""
        return (
            (["DỰ THẢO"] if self.draft else [])
            + ([REHEARSAL_MARK] if self.rehearsal else [])
            + ([EDITABLE_COPY_MARK] if self.editable_copy else [])
        )

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
    plan: Plan,
    report: AnnualReport,
    *,
    summary: str,
    issued_on: dt.date,
    number: int | None,
    clock: CycleClock = AS_PLANNED,
) -> ReportDocument:
    """The report's layout and words (Vietnamese, the language of the province's documents).
    Its dates are the cycle's own (`clock`: a rehearsal's compressed calendar)."""
    tz = plan.tz
    spec = report_spec(plan)
    issuer = report.issuer
    symbol = symbol_of(issuer)
    table = [
        [
            str(i),
            u.name,
            STATUS_VI.get(u.status, u.status),
            clock.dated(u.submitted_at).astimezone(tz).strftime("%d/%m/%Y") if u.submitted_at else "—",
        ]
        for i, u in enumerate(report.units, start=1)
    ]
    missing = [u.name for u in report.missing]
    sections: list[Section] = []
    for i, unit in enumerate(report.reported, start=1):
        paragraphs = [p.strip() for p in unit.text.split("\n") if p.strip()] or ["(Không có nội dung.)"]
        paragraphs += [f"{name}: {' '.join(text.split())}" for name, text in unit.parts]
        sections.append(Section(f"{i}. {unit.name}", paragraphs, unit.links, unit.files))
    recipients = [f"- {a.name.vi};" for a in report.recipients] + ["- Lưu: VT."]
    title = plan.plan.title.vi
    words = ReportDocument(
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
            f"{clock.dated(report.deadline).astimezone(tz).strftime('%d/%m/%Y')} như sau:"
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
        rehearsal=clock.rehearsal,
    )
    return replace(words, **{f.name: _deep_nfc(getattr(words, f.name)) for f in fields(words)})


def awaiting_number(words: ReportDocument) -> ReportDocument:
    """The approved report as its director signs it (Decree 30/2020, Art. 13-15): no longer a
    draft, its number and its date left blank ("Số:        /BC-SKHCN", "Lạng Sơn, ngày      tháng
    năm     ") for the register to fill once the director signed (`approvals.signing`)."""
    symbol = words.number.rpartition("/")[2]
    place = words.place_date.rpartition(", ngày ")[0] or words.place_date
    blank_date = f"{place}, ngày      tháng      năm      "
    return replace(words, draft=False, number=f"Số:        /{symbol}", place_date=blank_date)


def _deep_nfc(value: Any) -> Any:
    """`value` in the same shape, with every text in it (in lists, in sections) NFC."""
    if isinstance(value, str):
        return _nfc(value)
    if isinstance(value, list):
        return [_deep_nfc(v) for v in value]
    if isinstance(value, Section):
        return Section(_nfc(value.heading), _deep_nfc(value.paragraphs), _deep_nfc(value.links), _deep_nfc(value.files))
    return value
