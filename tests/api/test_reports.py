"""The consolidated report downloaded from the API, as a viewer would: a DOCX and a PDF of the
year with every unit owed, named as a draft; a format the API does not write is refused, and
nobody without a token gets it."""

from __future__ import annotations

import datetime as dt
import io

from docx import Document
from pypdf import PdfReader

from approvals.plan import load_plan
from approvals.routing import steps


async def test_a_viewer_downloads_the_years_report_as_docx_and_pdf(client, accounts, settings):
    plan = load_plan(settings.plan_file)
    owed = len(plan.branches(steps.stage_of(plan, "annual", "annual_report"), dt.date(2024, 11, 29)))
    response = await client.get("/api/v1/reports/annual/2024?format=docx", headers=accounts.as_viewer)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument")
    assert 'filename="bao-cao-tong-hop-du-thao-2024.docx"' in response.headers["content-disposition"]
    docx = Document(io.BytesIO(response.content))
    assert len(docx.tables[1].rows) == owed + 1  # 2024: the 11 districts and the city, before the reform
    assert any("UBND huyện" in row.cells[1].text for row in docx.tables[1].rows)

    pdf = await client.get("/api/v1/reports/annual/2024", headers=accounts.as_viewer)  # PDF by default
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in text and "DỰ THẢO" in text


async def test_an_unknown_format_or_no_token_is_refused(client, accounts):
    refused = await client.get("/api/v1/reports/annual/2026?format=xls", headers=accounts.as_viewer)
    assert refused.status_code == 422
    assert (await client.get("/api/v1/reports/annual/2026?format=pdf")).status_code == 401
    assert (await client.get("/api/v1/reports/annual/1999", headers=accounts.as_viewer)).status_code == 422
