"""The lead agency's consolidated report of 2026, on the real plan at its real size: every unit
asked at the annual-report stage (89), one accepted with its text, links and a file, one
waiting for its decision, one sent back, the rest silent. The data names every unit with its
status and date and every file; the DOCX and the PDF are laid out as Decree 30/2020 asks, in
NFC Vietnamese, and go to the PPC and to both ministries that took over the MIC's duties."""

from __future__ import annotations

import datetime as dt
import io
import unicodedata

import time_machine
from docx import Document
from pypdf import PdfReader
from sqlalchemy import select

from approvals import consolidated
from approvals.clock.deadlines import CycleClock
from approvals.config import PACKAGED_PLAN, Settings
from approvals.consolidated import UnitStatus
from approvals.consolidated.files import to_docx, to_pdf
from approvals.db import utcnow
from approvals.models import Assignment, Cycle, SubmissionLink
from approvals.plan import load_plan
from approvals.routing import steps
from approvals.routing.decisions import decide, settle_request
from approvals.routing.submitting import parse_submission, submit
from approvals.statuses import Outcome, RequestStatus
from approvals.tokens import derive_token
from flows.stages import open_branch
from notifications.render import Renderer

SETTINGS = Settings(link_secret="c" * 48)
PLAN = load_plan(PACKAGED_PLAN)
TZ = PLAN.tz
TTL = dt.timedelta(days=60)
KEY = SETTINGS.link_secret_bytes()


def at(month: int, day: int, hour: int = 9) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=TZ)


async def _year_2026(db) -> dict:
    """Stage 7 of 2026 opened on 1 October for every unit, as the run opens it; three units act."""
    stage = steps.stage_of(PLAN, "annual", "annual_report")
    with time_machine.travel(at(10, 1), tick=False):
        async with db.transaction() as session:
            cycle = await steps.get_or_create_cycle(
                session, kind="annual", period="2026", starts_on=dt.date(2026, 1, 15)
            )
            for subject in PLAN.branches(stage, dt.date(2026, 10, 1)):
                await open_branch(
                    session,
                    plan=PLAN,
                    settings=SETTINGS,
                    renderer=Renderer(),
                    cycle=cycle,
                    stage=stage,
                    subject=subject,
                    waiter_ref=None,
                    link_ttl=TTL,
                    data=None,
                )
    async with db.sessions() as session:
        rows = (
            await session.execute(
                select(steps.ApprovalRequest.subject, steps.ApprovalRequest.id).where(
                    steps.ApprovalRequest.cycle_id == cycle.id
                )
            )
        ).all()
    ids = dict(rows)

    async def send(unit: str, when: dt.datetime, text: str, links: str = "", files=()):
        with time_machine.travel(when, tick=False):
            async with db.transaction() as session:
                link = (
                    await session.execute(select(SubmissionLink).where(SubmissionLink.request_id == ids[unit]))
                ).scalar_one()
                data = parse_submission(stage_kind=stage.kind, text=text, links=links)
                await submit(
                    session,
                    plan=PLAN,
                    secret=KEY,
                    token=derive_token(KEY, link.id, 1),
                    data=data,
                    now=utcnow(),
                    link_ttl=TTL,
                    files=list(files),
                )

    async def decides(unit: str, when: dt.datetime, outcome: Outcome, comment: str = ""):
        with time_machine.travel(when, tick=False):
            async with db.transaction() as session:
                assignment = (
                    await session.execute(select(Assignment).where(Assignment.request_id == ids[unit]))
                ).scalar_one()
                await decide(
                    session,
                    token=derive_token(KEY, assignment.id, assignment.token_generation),
                    outcome=outcome,
                    comment=comment,
                    now=utcnow(),
                    plan=PLAN,
                    secret=KEY,
                    link_ttl=TTL,
                )

    # Typed on a phone: decomposed diacritics (NFD) come in, NFC goes out.
    await send(
        "dost",
        at(11, 12),
        unicodedata.normalize(
            "NFD", "Đã đăng 124 tin, bài về phát triển bền vững.\nTổ chức 3 hội nghị đối thoại doanh nghiệp."
        ),
        links="https://skhcn.langson.gov.vn/tin-1\nhttps://skhcn.langson.gov.vn/tin-2",
        files=[
            ("Báo cáo năm 2026.pdf", "application/pdf", b"%PDF-1.4 demo"),
            ("Phụ lục số liệu.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", b"PK demo"),
        ],
    )
    await decides("dost", at(11, 14), Outcome.approve)
    await send("dcst", at(11, 20), "Phát sóng 40 chương trình về văn hóa, du lịch bền vững.")
    await send("dof", at(11, 21), "Bố trí 1,2 tỷ đồng cho công tác truyền thông.")
    await decides("dof", at(11, 23), Outcome.request_changes, "Đề nghị bổ sung số liệu giải ngân.")
    # Escalated at the deadline and never decided: the sweep expires it, after it was sent...
    await send("literature_arts_association", at(11, 22), "Xuất bản 2 số tạp chí chuyên đề.")
    # ... and one that never sent anything (an expiry policy, or a coordinator's cancel).
    for unit in ("literature_arts_association", "provincial_web_portal"):
        with time_machine.travel(at(12, 7), tick=False):
            async with db.transaction() as session:
                request = await steps.lock_request(session, ids[unit])
                await settle_request(session, request=request, outcome=RequestStatus.expired, now=utcnow())
    return ids


async def test_the_consolidated_report_names_every_unit_and_what_it_sent(private_database):
    await _year_2026(private_database)
    async with private_database.sessions() as session:
        report = await consolidated.gather(session, PLAN, 2026, now=at(12, 5))

    owed = PLAN.branches(steps.stage_of(PLAN, "annual", "annual_report"), dt.date(2026, 11, 29))
    assert [u.unit for u in report.units] == owed and len(owed) == 89
    by_unit = {u.unit: u for u in report.units}
    acted = ("dost", "dcst", "dof", "literature_arts_association", "provincial_web_portal")
    assert {u: by_unit[u].status for u in acted} == {
        "dost": UnitStatus.approved,
        "dcst": UnitStatus.submitted,
        "dof": UnitStatus.changes_requested,
        "literature_arts_association": UnitStatus.undecided,
        "provincial_web_portal": UnitStatus.expired,
    }
    assert {u.status for u in report.units if u.unit not in acted} == {UnitStatus.not_submitted}
    assert [u.unit for u in report.reported] == ["dost", "dcst", "dof", "literature_arts_association"]
    assert len(report.missing) == 85 and "provincial_web_portal" in [u.unit for u in report.missing]
    assert by_unit["literature_arts_association"].text == "Xuất bản 2 số tạp chí chuyên đề."
    assert by_unit["provincial_web_portal"].submitted_at is None
    dost = by_unit["dost"]
    assert dost.submitted_at.astimezone(TZ).date() == dt.date(2026, 11, 12)
    assert dost.text == "Đã đăng 124 tin, bài về phát triển bền vững.\nTổ chức 3 hội nghị đối thoại doanh nghiệp."
    assert dost.links == ["https://skhcn.langson.gov.vn/tin-1", "https://skhcn.langson.gov.vn/tin-2"]
    assert sorted(dost.files) == ["Báo cáo năm 2026.pdf", "Phụ lục số liệu.xlsx"]
    assert by_unit["dof"].submitted_at.astimezone(TZ).date() == dt.date(2026, 11, 21)
    assert by_unit["lang_son_newspaper_radio_tv"].submitted_at is None
    # The lead agency after the 2025 mergers signs; the MIC's duties went to two ministries: both get it.
    assert report.issuer.id == "dost" and report.signer.id == "dost_director"
    assert [a.id for a in report.recipients] == ["ppc", "most", "mcst"]

    document = consolidated.document(
        PLAN, report, summary=consolidated.default_summary(report), issued_on=dt.date(2026, 12, 5), number=None
    )
    assert document.draft and document.number == "Số:        /BC-SKHCN"
    assert document.place_date == "Lạng Sơn, ngày 05 tháng 12 năm 2026"
    assert document.recipients == [
        "- Ủy ban nhân dân tỉnh Lạng Sơn;",
        "- Bộ Khoa học và Công nghệ;",
        "- Bộ Văn hóa, Thể thao và Du lịch;",
        "- Lưu: VT.",
    ]
    missing_names = [u.name for u in report.missing]
    assert all(name in document.missing for name in missing_names) and "4/89" in document.missing
    numbered = consolidated.document(
        PLAN, report, summary="Đánh giá chung.", issued_on=dt.date(2026, 12, 5), number=117
    )
    assert not numbered.draft and numbered.number == "Số: 117/BC-SKHCN" and numbered.summary == ["Đánh giá chung."]

    _check_docx(to_docx(document), missing_names)
    _check_pdf(to_pdf(document), missing_names)

    # A rehearsal's report says so above its kind, and its dates are the rehearsal's calendar's:
    # the DoF's report, sent 10 wall minutes after the rehearsal began, is dated 121.7 planned days on.
    first = dt.datetime(2026, 1, 15, tzinfo=TZ)
    clock = CycleClock(speed=17_520.0, start=first, began=by_unit["dof"].submitted_at - dt.timedelta(minutes=10))
    rehearsed = consolidated.document(
        PLAN, report, summary="Đánh giá chung.", issued_on=dt.date(2026, 12, 14), number=1, clock=clock
    )
    assert rehearsed.marks == ["BẢN DIỄN TẬP - KHÔNG CÓ GIÁ TRỊ THỰC HIỆN"] and document.marks == ["DỰ THẢO"]
    dof_row = next(row for row in rehearsed.table if row[1] == by_unit["dof"].name)
    assert dof_row[3] == (first + dt.timedelta(seconds=600 * 17_520.0)).strftime("%d/%m/%Y") == "16/05/2026"
    pdf_text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(to_pdf(rehearsed))).pages)
    docx_text = " ".join(p.text for p in Document(io.BytesIO(to_docx(rehearsed))).paragraphs)
    assert "BẢN DIỄN TẬP" in " ".join(pdf_text.split()) and "BẢN DIỄN TẬP" in docx_text


def _check_docx(data: bytes, missing_names: list[str]) -> None:
    docx = Document(io.BytesIO(data))
    section = docx.sections[0]
    mm = [
        round(length.mm)
        for length in (
            section.page_width,
            section.page_height,
            section.left_margin,
            section.right_margin,
            section.top_margin,
            section.bottom_margin,
        )
    ]
    assert mm == [210, 297, 30, 15, 20, 20]  # A4 portrait, Decree 30's margins (stored in twips)
    assert section.different_first_page_header_footer  # page 1 carries no number
    assert "PAGE" in section.header.paragraphs[0]._p.xml
    top, units, end = docx.tables
    assert [p.text for p in top.cell(0, 0).paragraphs] == [
        "UBND TỈNH LẠNG SƠN",
        "SỞ KHOA HỌC VÀ CÔNG NGHỆ",
        "———",
        "Số:        /BC-SKHCN",
    ]
    assert [p.text for p in top.cell(0, 1).paragraphs][:2] == [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
    ]
    assert top.cell(0, 1).paragraphs[-1].runs[0].italic  # place and date
    rows = [[c.text for c in row.cells] for row in units.rows]
    assert rows[0] == ["STT", "Cơ quan, đơn vị", "Tình trạng", "Ngày gửi"] and len(rows) == 90
    assert rows[1] == ["1", "Sở Khoa học và Công nghệ", "Đã báo cáo, đã được chấp thuận", "12/11/2026"]
    assert sum(1 for row in rows if row[2] == "Chưa báo cáo" and row[3] == "—") == 84
    assert ["Hội Văn học và Nghệ thuật tỉnh", "Đã báo cáo, chưa được xem xét trong hạn", "22/11/2026"] in [
        row[1:] for row in rows
    ]
    assert ["Cổng thông tin điện tử tỉnh", "Chưa báo cáo (quá hạn)", "—"] in [row[1:] for row in rows]
    texts = [p.text for p in docx.paragraphs]
    for expected in (
        "DỰ THẢO",
        "BÁO CÁO",
        "I. TÌNH HÌNH BÁO CÁO CỦA CÁC CƠ QUAN, ĐƠN VỊ",
        "1. Sở Khoa học và Công nghệ",
        "Tổ chức 3 hội nghị đối thoại doanh nghiệp.",
        "Liên kết: https://skhcn.langson.gov.vn/tin-1; https://skhcn.langson.gov.vn/tin-2",
    ):
        assert expected in texts, expected
    assert any(
        t.startswith("Tệp đính kèm: ") and "Báo cáo năm 2026.pdf" in t and "Phụ lục số liệu.xlsx" in t for t in texts
    )
    assert all(unicodedata.is_normalized("NFC", t) for t in texts + [c for row in rows for c in row])
    assert [p.text for p in end.cell(0, 0).paragraphs][:2] == ["Nơi nhận:", "- Ủy ban nhân dân tỉnh Lạng Sơn;"]
    assert [p.text for p in end.cell(0, 1).paragraphs if p.text] == ["GIÁM ĐỐC", "Nông Thị Hạnh"]
    assert docx.styles["Normal"].font.name == "Times New Roman"
    assert all(name in "\n".join(texts) for name in missing_names)


def _check_pdf(data: bytes, missing_names: list[str]) -> None:
    pdf = PdfReader(io.BytesIO(data))
    assert len(pdf.pages) > 1
    page = pdf.pages[0]
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)  # A4 in points
    fonts = {str(f["/BaseFont"]) for p in pdf.pages for f in p["/Resources"]["/Font"].values()}
    assert all("DejaVuSerif" in f for f in fonts)  # embedded subsets of the shipped font
    text = "\n".join(unicodedata.normalize("NFC", p.extract_text()) for p in pdf.pages)
    for expected in (
        "UBND TỈNH LẠNG SƠN",
        "SỞ KHOA HỌC VÀ CÔNG NGHỆ",
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "Lạng Sơn, ngày 05 tháng 12 năm 2026",
        "BÁO CÁO",
        "DỰ THẢO",
        "Nơi nhận:",
        "Bộ Văn hóa, Thể thao và Du lịch;",
        "GIÁM ĐỐC",
        "Nông Thị Hạnh",
        "Phụ lục số liệu.xlsx",
        "Đã báo cáo, đang xem xét",
    ):
        assert expected in text, expected
    flat = " ".join(text.split())
    assert all(name in flat for name in missing_names)
    assert pdf.pages[1].extract_text().lstrip().startswith("2")  # numbered from page 2
    first = pdf.pages[0].extract_text().lstrip()
    assert not first.startswith("1")


async def test_a_year_nobody_reported_names_every_unit_as_missing(private_database):
    async with private_database.transaction() as session:
        await steps.get_or_create_cycle(session, kind="annual", period="2025", starts_on=dt.date(2025, 1, 15))
    async with private_database.sessions() as session:
        report = await consolidated.gather(session, PLAN, 2025, now=at(12, 5))
        cycles = (await session.execute(select(Cycle))).scalars().all()
    assert len(cycles) == 1
    # 2025's deadline fell after the 1 July reform: the communes and wards owe it, not the districts.
    assert len(report.units) == len(
        PLAN.branches(steps.stage_of(PLAN, "annual", "annual_report"), dt.date(2025, 11, 29))
    )
    assert not report.reported and all(u.status == UnitStatus.not_submitted for u in report.units)
    document = consolidated.document(
        PLAN, report, summary=consolidated.default_summary(report), issued_on=dt.date(2025, 12, 3), number=None
    )
    assert document.sections == [] and document.missing.startswith(f"Có 0/{len(report.units)} ")
