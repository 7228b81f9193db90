"""The whole annual chain end to end on real parts (Prefect server and worker, SMTP server,
`kehoach web` and `kehoach dispatch`): every step is done by an official from the link in the
email they received, as a person would, and the one suspended run carries the year from the
lead agency's orientation to the annual reports of every unit in force (about 90: the
departments, the press, the mass organisations, the 65 communes and wards) and the lead
agency's consolidated report to the PPC, waking once per stage. The year's dates have passed,
so the report opens at once; the units and officials are today's."""

from __future__ import annotations

import html
import io
import unicodedata
from pathlib import Path

import docx
import pypdf
import pypdfium2
import pytest
from sqlalchemy import text

from approvals.config import PACKAGED_PLAN
from approvals.plan import load_plan
from tests.support import local_http
from tests.support.officials import (
    ASK,
    ORIENTATION,
    SUBMIT,
    Inbox,
    address,
    approve,
    consolidate,
    guide,
    orient,
    report_every_unit,
    reporters,
    rows,
    submit,
)

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SILENT = frozenset({"pc_commune_that_khe", "veterans_association"})  # send nothing by 30 November
SUMMARY = (
    "Năm nay các cơ quan báo chí đã tuyên truyền đầy đủ về phát triển bền vững.\n"
    "Đề nghị UBND tỉnh đôn đốc UBND xã Thất Khê và Hội Cựu chiến binh tỉnh báo cáo bổ sung."
)
NAMES = {a.id: a.name.vi for a in load_plan(PACKAGED_PLAN).agencies}
GUIDANCE = "Đề nghị nhấn mạnh nông nghiệp xanh và kinh tế cửa khẩu."


def test_the_annual_chain_from_orientation_to_the_units_reports(stack):
    year = stack.past_year(1)
    run_id = stack.start_cycle(year)
    inbox = Inbox(stack, year)

    # 1. The lead agency's press officer submits the orientation, its director approves it.
    orient(inbox, "Nhất trí.")
    # 2. The Propaganda Board is requested to give guidance; the lead agency acknowledges it.
    guide(inbox, GUIDANCE)

    # 3. Materials: nobody decides before the compiling department submits them.
    materials = inbox.link("dof_planning_officer", SUBMIT, "3. ")
    waiting = rows(
        stack,
        year,
        "SELECT r.status, COUNT(a.id) FROM approval_request r JOIN cycle c ON c.id = r.cycle_id "
        "LEFT JOIN assignment a ON a.request_id = r.id WHERE c.period = :p AND r.stage = 'materials' "
        "GROUP BY r.status",
    )
    assert waiting == [("awaiting_submission", 0)]
    submit(
        materials,
        text="Bộ tài liệu về phát triển bền vững và năng lực cạnh tranh",
        links="https://langson.gov.vn/tai-lieu-ptbv",
    )
    decide = inbox.link("dof_director", ASK, "3. ")
    assert "Bộ tài liệu về phát triển bền vững" in local_http.get(decide).text
    approve(decide)

    # 4. One branch per outlet (the newspaper and the radio-TV station merged in 2025): each
    # editor submits, the outlet's head then the lead agency's director approve in sequence.
    # The orientation and the Board's guidance reach every outlet: in the email and on the form.
    for editor in ("newspaper_radio_tv_editor", "literature_arts_editor", "portal_editor"):
        link = inbox.link(editor, SUBMIT, "4. ")
        asked = next(r for r in stack.smtp.received if link in r.text)
        form = html.unescape(local_http.get(link).text)
        for shown in (GUIDANCE, ORIENTATION["field_themes"], ORIENTATION["field_calendar"]):
            assert shown in asked.text and shown in form, (editor, shown)
        assert "Chủ trương, chính sách" in form and "Môi trường" in form  # a box per yearly content area
        submit(
            link,
            text=f"Kế hoạch sản xuất {year} của {editor}",
            field_area_environment=f"Chuyên mục môi trường của {editor}",
        )
    approve(inbox.link("newspaper_radio_tv_head", ASK, "4. "))
    approve(inbox.link("portal_head", ASK, "4. "))
    rejected = local_http.post(
        inbox.link("literature_arts_chair", ASK, "4. "),
        data={"outcome": "reject", "comment": "Hội không đủ kinh phí năm nay."},
    )
    assert rejected.status_code == 200
    for _ in range(2):  # only the two branches their heads approved reach the director
        approve(inbox.link("dost_director", ASK, "4. "))

    # 5. The finance allocation, above 2 billion VND: the PPC vice-chair approves too.
    submit(
        inbox.link("dof_budget_officer", SUBMIT, "5. "), text="Phân bổ kinh phí truyền thông", amount="2.400.000.000"
    )
    approve(inbox.link("dof_director", ASK, "5. "))
    approve(inbox.link("ppc_vice_chair", ASK, "5. "))

    # 7. Every unit in force reports through the lead agency (the departments, the press, the
    # mass organisations, the 65 communes and wards...), whose director accepts each report;
    # two reports go back for changes and come again; two units send nothing.
    returned = {
        "pc_ward_tam_thanh": "Bổ sung số buổi tuyên truyền ở khu dân cư.",
        "womens_union": "Bổ sung số hội viên được tuyên truyền.",
    }
    units = report_every_unit(inbox, returned=returned, silent=SILENT)
    assert len(units) >= 85  # the province's size: 15 departments, 6 mass organisations, 65 communes...

    # 30 November passes with two units silent: the sweep wakes the run, which goes on to stage 8.
    with stack.sandbox.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE cycle_stage SET goes_on_at = :past WHERE stage = 'annual_report' AND "
                "cycle_id = (SELECT id FROM cycle WHERE kind = 'annual' AND period = :p)"
            ),
            {"past": "2000-01-01 00:00:00+00:00", "p": str(year)},
        )
    stack.wait_for_state(stack.start_run("sweep/sweep", {}), {"Completed"})

    # 8. The lead agency's coordinator submits the consolidated report, its director approves it,
    # and the numbered report goes to the PPC and the ministries with both files attached.
    form = consolidate(inbox, summary=unicodedata.normalize("NFD", SUMMARY))  # typed on a phone: decomposed
    assert f"{len(units)} of {len(units) + len(SILENT)} agencies and units have reported" in form, form[
        form.find("<main>") :
    ][:1500]
    assert all(NAMES[unit] in form for unit in SILENT)  # named as not reported

    stack.wait_for_state(run_id, {"Completed"}, timeout=180)
    stages = dict(
        rows(
            stack,
            year,
            "SELECT s.stage, s.status FROM cycle_stage s JOIN cycle c ON c.id = s.cycle_id "
            "WHERE c.period = :p AND c.kind = 'annual'",
        )
    )
    assert stages == {
        "dic_direction": "done",
        "propaganda_guidance": "done",
        "materials": "done",
        "outlet_plans": "rejected",  # one branch was rejected; the chain went on with the others
        "finance_allocation": "done",
        "implementation": "done",
        "annual_report": "waiting",  # the silent units may still report late
        "consolidated_report": "done",
    }
    _the_issued_report(stack, year, units)
    outlets = rows(
        stack,
        year,
        "SELECT r.subject, r.status FROM approval_request r JOIN cycle c "
        "ON c.id = r.cycle_id WHERE c.period = :p AND c.kind = 'annual' "
        "AND r.stage = 'outlet_plans' ORDER BY r.subject",
    )
    assert outlets == [
        ("lang_son_newspaper_radio_tv", "approved"),
        ("literature_arts_association", "rejected"),
        ("provincial_web_portal", "approved"),
    ]
    # Every unit asked once, its latest round approved (the silent ones still asked); two went a
    # second round.
    reports = rows(
        stack,
        year,
        "SELECT r.subject, r.round, r.status FROM approval_request r JOIN cycle c "
        "ON c.id = r.cycle_id WHERE c.period = :p AND c.kind = 'annual' "
        "AND r.stage = 'annual_report'",
    )
    latest = {subject: (n, status) for subject, n, status in sorted(reports)}
    assert set(latest) == set(units) | SILENT
    assert {s for s, (n, status) in latest.items() if n == 2} == set(returned)
    assert {s: status for s, (_, status) in latest.items() if status != "approved"} == {
        unit: "awaiting_submission" for unit in SILENT
    }
    asked = [
        r.envelope_to
        for r in stack.smtp.received
        if str(year) in r.subject and SUBMIT in r.subject and "7. " in r.subject
    ]
    everyone = {**reporters(), **units}
    assert sorted(a for to in asked for a in to) == sorted(address(officer) for officer in everyone.values())
    budget = rows(
        stack,
        year,
        "SELECT r.policy, COUNT(d.id) FROM approval_request r JOIN cycle c ON c.id = r.cycle_id "
        "JOIN decision d ON d.request_id = r.id WHERE c.period = :p AND c.kind = 'annual' "
        "AND r.stage = 'finance_allocation' GROUP BY r.policy",
    )
    assert budget == [("all", 2)]
    # Each decision and each submission once; no email sent twice (by Message-ID at the server).
    ids = [r.message["Message-ID"] for r in stack.smtp.received if str(year) in r.subject]
    assert len(ids) == len(set(ids))
    digest = stack.smtp.wait_for(
        lambda r: (
            "dieuphoi.skhcn@lang-son.example" in r.envelope_to
            and str(year) in r.subject
            and "finished" in r.subject.lower()
        )
    )
    assert "Annual implementation report" in digest.text
    # The run was woken once per stage, not once per branch: a handful of resumes for ~90 units.
    woken = rows(
        stack,
        year,
        "SELECT w.stage, COUNT(*) FROM wake w JOIN cycle c ON c.id = w.cycle_id "
        "WHERE c.period = :p AND c.kind = 'annual' GROUP BY w.stage",
    )
    assert dict(woken) == {
        stage: 1
        for stage in (
            "dic_direction",
            "propaganda_guidance",
            "materials",
            "outlet_plans",
            "finance_allocation",
            "annual_report",
            "consolidated_report",
        )
    }


def _the_issued_report(stack, year: int, units: dict[str, str]) -> None:
    """The PPC's email carries the numbered report as DOCX and PDF: every unit of the year in its
    table, the silent ones named, the summary as the coordinator wrote it (NFC), the units'
    names with their diacritics in the PDF's text; page 1 is saved under test-artifacts/."""
    plan = load_plan(PACKAGED_PLAN)
    email = stack.smtp.wait_for(
        lambda r: address_of(plan, "ppc") in r.envelope_to and "[Báo cáo]" in r.subject and str(year) in r.subject
    )
    files = {part.get_filename(): part.get_payload(decode=True) for part in email.message.iter_attachments()}
    assert set(files) == {f"bao-cao-tong-hop-{year}.docx", f"bao-cao-tong-hop-{year}.pdf"}
    assert "1/BC-SKHCN" in email.subject
    for ministry in ("most", "mcst"):  # the MIC merged away: both successors get it, each once
        stack.smtp.wait_for(
            lambda r, ministry=ministry: (
                address_of(plan, ministry) in r.envelope_to and "[Báo cáo]" in r.subject and str(year) in r.subject
            )
        )
        assert (
            len(
                [
                    r
                    for r in stack.smtp.received
                    if address_of(plan, ministry) in r.envelope_to
                    and "[Báo cáo]" in r.subject
                    and str(year) in r.subject
                ]
            )
            == 1
        )

    document = docx.Document(io.BytesIO(files[f"bao-cao-tong-hop-{year}.docx"]))
    table = document.tables[1]  # the first is the heading (issuing body | national motto)
    listed = [row.cells[1].text for row in table.rows[1:]]
    everyone = {**units, **{unit: "" for unit in SILENT}}
    assert sorted(listed) == sorted(NAMES[unit] for unit in everyone)
    statuses = {row.cells[1].text: row.cells[2].text for row in table.rows[1:]}
    assert all(statuses[NAMES[unit]] == "Chưa báo cáo" for unit in SILENT)
    assert all(statuses[NAMES[unit]] == "Đã báo cáo, đã được chấp thuận" for unit in units)
    body = "\n".join(p.text for p in document.paragraphs)
    missing = next(line for line in body.splitlines() if line.startswith("Có "))
    assert all(NAMES[unit] in missing for unit in SILENT)
    assert "Số: 1/BC-SKHCN" in "\n".join(c.text for c in document.tables[0].rows[0].cells)
    assert SUMMARY in body and unicodedata.is_normalized("NFC", body)
    assert "DỰ THẢO" not in body  # issued, not a draft

    pdf = files[f"bao-cao-tong-hop-{year}.pdf"]
    text_of_pdf = unicodedata.normalize(
        "NFC", "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    )
    flat = " ".join(text_of_pdf.split())
    for unit in ("pc_commune_that_khe", "pc_ward_ky_lua", "dof", "womens_union"):
        assert NAMES[unit] in flat, NAMES[unit]
    page = pypdfium2.PdfDocument(pdf)[0].render(scale=1.5).to_pil()
    ARTIFACTS.mkdir(exist_ok=True)
    page.save(ARTIFACTS / f"consolidated-report-{year}-page-1.png")
    assert page.size[0] > 800  # A4 at 108 dpi

    with stack.reading() as conn:
        issued = conn.execute(
            text(
                "SELECT i.number, i.symbol, i.recipients FROM issued_report i JOIN cycle c "
                "ON c.id = i.cycle_id WHERE c.period = :p"
            ),
            {"p": str(year)},
        ).all()
    assert len(issued) == 1 and (issued[0][0], issued[0][1]) == (1, "BC-SKHCN")
    dashboard = local_http.get(
        f"{stack.base_url}/api/v1/reports/annual/{year}",
        params={"format": "pdf"},
        headers={"Authorization": f"Bearer {stack.api_token()}"},
    )
    assert dashboard.status_code == 200 and dashboard.content == pdf  # the API serves the report as issued


def address_of(plan, agency_id: str) -> str:
    return str(plan.agency(agency_id).email)


def test_a_cancelled_cycle_stops_where_it_is(stack):
    year = stack.year(7)
    run_id = stack.start_cycle(year)
    inbox = Inbox(stack, year)
    orient(inbox)
    guidance = inbox.link("propaganda_head", SUBMIT, "2. ")
    stack.wait_for_state(run_id, {"Suspended"})

    token = stack.api_token()
    (cycle_id,) = [
        c["id"]
        for c in local_http.get(
            f"{stack.base_url}/api/v1/cycles", params={"year": year}, headers={"Authorization": f"Bearer {token}"}
        ).json()
        if c["kind"] == "annual" and c["period"] == str(year)
    ]
    cancelled = local_http.post(
        f"{stack.base_url}/api/v1/cycles/{cycle_id}/cancel",
        headers={"Authorization": f"Bearer {token}"},
        json={"reason": "Điều chỉnh kế hoạch"},
    )
    assert cancelled.status_code == 200, cancelled.text

    stack.wait_for_state(run_id, {"Completed"})  # the run learns it on resume and opens nothing more
    assert local_http.get(guidance).status_code == 404  # the open link closed with the cycle
    stages = dict(
        rows(
            stack,
            year,
            "SELECT s.stage, s.status FROM cycle_stage s JOIN cycle c ON c.id = s.cycle_id WHERE c.period = :p",
        )
    )
    assert stages == {"dic_direction": "done", "propaganda_guidance": "expired"}
