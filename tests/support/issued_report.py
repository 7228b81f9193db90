"""What the PPC and the ministries receive at the end of an annual chain: the numbered
consolidated report, as DOCX and PDF, checked as a reader would (tests/test_e2e_chain.py)."""

from __future__ import annotations

import io
import unicodedata
from pathlib import Path

import docx
import pypdf
import pypdfium2
from sqlalchemy import text

from approvals.config import PACKAGED_PLAN
from approvals.plan import load_plan
from approvals.signing.signers import read_certificate
from approvals.signing.verification import Verdict, verify
from tests.support import local_http

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
NAMES = {a.id: a.name.vi for a in load_plan(PACKAGED_PLAN).agencies}


def the_issued_report(
    stack, year: int, units: dict[str, str], *, silent: frozenset[str], summary: str, replaced: str
) -> None:
    """The PPC's email carries the numbered report as DOCX and PDF: every unit of the year in its
    table, the silent ones named, the summary as the coordinator wrote it (NFC) and not the draft
    it `replaced`, the units' names with their diacritics in the PDF's text; page 1 is saved
    under test-artifacts/."""
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
    everyone = {**units, **{unit: "" for unit in silent}}
    assert sorted(listed) == sorted(NAMES[unit] for unit in everyone)
    statuses = {row.cells[1].text: row.cells[2].text for row in table.rows[1:]}
    assert all(statuses[NAMES[unit]] == "Chưa báo cáo" for unit in silent)
    assert all(statuses[NAMES[unit]] == "Đã báo cáo, đã được chấp thuận" for unit in units)
    body = "\n".join(p.text for p in document.paragraphs)
    missing = next(line for line in body.splitlines() if line.startswith("Có "))
    assert all(NAMES[unit] in missing for unit in silent)
    assert "Số: 1/BC-SKHCN" in "\n".join(c.text for c in document.tables[0].rows[0].cells)
    assert summary in body and unicodedata.is_normalized("NFC", body)
    assert replaced not in body  # the draft the director sent back
    assert "DỰ THẢO" not in body  # issued, not a draft

    pdf = files[f"bao-cao-tong-hop-{year}.pdf"]
    text_of_pdf = unicodedata.normalize(
        "NFC", "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    )
    flat = " ".join(text_of_pdf.split())
    for unit in ("pc_commune_that_khe", "pc_ward_ky_lua", "dof", "womens_union"):
        assert NAMES[unit] in flat, NAMES[unit]
    # The PDF as the PPC received it is the signed original: the director's signature, then the
    # agency's over the number and date the register wrote in, each valid against the test CA of
    # the stack's signing folder: the director signed on the phone (the fake provider), the agency
    # with its PKCS#12 file (tests/support/remote_director.py).
    checks = verify(pdf, trust_roots=[read_certificate(stack.signing.trust_root)])
    assert [(c.field, c.verdict) for c in checks] == [("director", Verdict.valid), ("agency", Verdict.valid)], [
        c.problem for c in checks
    ]
    entries = {str(f.get("/V", "")) for f in (pypdf.PdfReader(io.BytesIO(pdf)).get_fields() or {}).values()}
    assert "Số: 1/BC-SKHCN" in entries, entries
    assert any(e.startswith("Lạng Sơn, ngày ") and unicodedata.is_normalized("NFC", e) for e in entries), entries
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
