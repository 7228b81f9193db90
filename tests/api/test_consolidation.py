"""The consolidated report's step (stage 8, kind consolidation) through its links, in process:
the coordinator's form shows the draft (every unit asked, the silent ones named) and its
downloads, the submission keeps the draft as DOCX and PDF for the director's page; a rejected
draft goes back to the coordinator and issues nothing; an approved one is numbered, emailed to
every recipient with both files and recorded once; a cancelled cycle closes the form."""

from __future__ import annotations

import asyncio
import io
import unicodedata

import docx
import pytest
from sqlalchemy import select

from approvals import coordination
from approvals.consolidated.document import EDITABLE_COPY_MARK
from approvals.consolidated.issuing import issue
from approvals.db import utcnow
from approvals.errors import NotFound
from approvals.models import ApprovalRequest, AuditEvent, CycleStage, SubmissionFile
from approvals.plan import load_plan
from approvals.report_models import IssuedReport
from approvals.signing.test_signers import TestSigners
from approvals.signing.verification import Verdict, document_digest, verify
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.render import Renderer
from tests.api.consolidation_steps import (
    SUMMARY,
    consolidation_opened,
    director_link,
    submitted_report,
    year_with_reports,
)


async def test_the_coordinator_sees_the_draft_and_submits_it_with_both_files(client, database, settings):
    year, cycle_id = await year_with_reports(database, settings, client, 2086)
    request_id, token, official = await consolidation_opened(database, settings, cycle_id)
    assert official == "dost_coordinator"  # the lead agency's coordinator (who reads English)

    page = await client.get(f"/s/{token}")
    assert page.status_code == 200
    assert "1 of 2 agencies and units have reported." in page.text
    assert "Hội Liên hiệp Phụ nữ tỉnh" in page.text and "Sở Tài chính" in page.text  # missing, and reported
    assert f"Năm {year}, 1/2 cơ quan, đơn vị đã gửi báo cáo" in page.text  # the summary it suggests
    draft = await client.get(f"/s/{token}/draft.docx")
    assert draft.status_code == 200 and "attachment" in draft.headers["content-disposition"]
    text = "\n".join(p.text for p in docx.Document(io.BytesIO(draft.content)).paragraphs)
    assert "DỰ THẢO" in text and "Hội Liên hiệp Phụ nữ tỉnh" in text
    assert (await client.get(f"/s/{token}/draft.pdf")).content.startswith(b"%PDF-")
    assert (await client.get(f"/s/{token}/draft.xls")).status_code == 404
    async with database.sessions() as session:
        request = await session.get(ApprovalRequest, request_id)
        assert request.status == "awaiting_submission" and not request.data  # reading changed nothing

    sent = await client.post(f"/s/{token}", data={"text": unicodedata.normalize("NFD", SUMMARY), "lang": "en"})
    assert sent.status_code == 200 and "Submitted" in sent.text
    async with database.sessions() as session:
        request = await session.get(ApprovalRequest, request_id, populate_existing=True)
        files = (
            await session.execute(
                select(SubmissionFile.filename, SubmissionFile.data)
                .where(SubmissionFile.request_id == request_id)
                .order_by(SubmissionFile.filename)
            )
        ).all()
    assert request.status == "pending" and request.data["text"] == SUMMARY  # NFC
    assert [(u["unit"], u["status"]) for u in request.data["report"]["units"]] == [
        ("dof", "submitted"),
        ("womens_union", "not_submitted"),
    ]
    assert request.data["report"]["units"][0]["files"] == ["so-lieu.txt"]
    assert [name for name, _ in files] == [
        f"bao-cao-tong-hop-du-thao-{year}.docx",
        f"bao-cao-tong-hop-du-thao-{year}.pdf",
    ]
    written = "\n".join(p.text for p in docx.Document(io.BytesIO(files[0][1])).paragraphs)
    assert "Đề nghị UBND tỉnh đôn đốc Hội Liên hiệp Phụ nữ tỉnh." in written and "so-lieu.txt" in written
    assert "Chủ trương, chính sách: Phổ biến Luật Ngân sách." in written  # what the unit did for each area

    director = await director_link(database, settings, request_id)
    page = await client.get(f"/a/{director}")
    assert f"bao-cao-tong-hop-du-thao-{year}.docx" in page.text and f"bao-cao-tong-hop-du-thao-{year}.pdf" in page.text
    async with database.sessions() as session:
        pdf_id = (
            await session.execute(
                select(SubmissionFile.id).where(
                    SubmissionFile.request_id == request_id, SubmissionFile.filename.like("%.pdf")
                )
            )
        ).scalar_one()
    assert (await client.get(f"/a/{director}/files/{pdf_id}")).content.startswith(b"%PDF-")
    assert (await client.get(f"/s/{token}")).status_code == 404  # the form link was used


async def test_a_rejected_draft_returns_to_the_coordinator_and_issues_nothing(client, database, settings, tmp_path):
    _year, cycle_id, request_id, director = await submitted_report(client, database, settings, 2087)
    decided = await client.post(f"/a/{director}", data={"outcome": "reject", "comment": "Viết lại phần đánh giá."})
    assert decided.status_code == 200
    async with database.sessions() as session:
        status = (
            await session.execute(
                select(CycleStage.status).where(
                    CycleStage.cycle_id == cycle_id, CycleStage.stage == "consolidated_report"
                )
            )
        ).scalar_one()
        told = (
            await session.execute(
                select(OutboxMessage.kind, OutboxMessage.recipients).where(
                    OutboxMessage.kind == "outcome", OutboxMessage.idempotency_key.contains(str(request_id))
                )
            )
        ).all()
        issued = (await session.execute(select(IssuedReport).where(IssuedReport.cycle_id == cycle_id))).all()
    assert status == "rejected"
    assert [r[0]["email"] for _, r in told] == ["dieuphoi.skhcn@lang-son.example"]
    assert issued == []
    with pytest.raises(NotFound, match="no approved consolidated report"):  # a rejected report is never issued
        plan = load_plan(settings.plan_file)
        await issue(
            database,
            plan=plan,
            cycle_id=cycle_id,
            stage_id="consolidated_report",
            send=Emails.of(plan, settings, Renderer()).report_issued,
            signers=TestSigners(tmp_path, plan),
        )


async def test_an_approved_report_is_signed_numbered_sealed_sent_with_both_files_and_recorded_once(
    client, database, settings, accounts
):
    year, cycle_id, request_id, director = await submitted_report(client, database, settings, 2088)
    assert (await client.post(f"/a/{director}", data={"outcome": "approve", "comment": ""})).status_code == 200
    plan = load_plan(settings.plan_file)
    send = Emails.of(plan, settings, Renderer()).report_issued
    signers = TestSigners(settings.data_dir, plan)  # the service's own: its API checks against the same CA
    key = {"plan": plan, "cycle_id": cycle_id, "stage_id": "consolidated_report", "send": send, "signers": signers}
    first = await issue(database, **key)
    again = await issue(database, **key)  # a replayed run, or a second worker
    assert (first.number, first.symbol, first.new) == (1, "BC-SKHCN", True)
    assert (again.number, again.new) == (1, False)
    # The MIC merged into the MOST and the MCST: both get it, with the PPC.
    assert sorted(r["agency"] for r in first.recipients) == ["mcst", "most", "ppc"]

    async with database.sessions() as session:
        sent = (
            (
                await session.execute(
                    select(OutboxMessage).where(
                        OutboxMessage.kind == "report_issued", OutboxMessage.idempotency_key.contains(str(cycle_id))
                    )
                )
            )
            .scalars()
            .all()
        )
        (issued,) = (await session.execute(select(IssuedReport).where(IssuedReport.cycle_id == cycle_id))).scalars()
        audited = (
            (
                await session.execute(
                    select(AuditEvent.data).where(
                        AuditEvent.entity_id == str(request_id), AuditEvent.action == "report.issued"
                    )
                )
            )
            .scalars()
            .all()
        )
        signatures = (
            (
                await session.execute(
                    select(AuditEvent.data)
                    .where(AuditEvent.entity_id == str(request_id), AuditEvent.action == "report.signed")
                    .order_by(AuditEvent.id)
                )
            )
            .scalars()
            .all()
        )
    assert sorted(m.recipients[0]["email"] for m in sent) == sorted(
        str(plan.agency(a).email) for a in ("ppc", "most", "mcst")
    )
    assert all(
        [a["filename"] for a in m.attachments] == [f"bao-cao-tong-hop-{year}.docx", f"bao-cao-tong-hop-{year}.pdf"]
        for m in sent
    )
    assert all("1/BC-SKHCN" in m.subject for m in sent)
    assert len(audited) == 1 and audited[0]["number"] == "1/BC-SKHCN"
    numbered = docx.Document(io.BytesIO(issued.docx))
    assert "Số: 1/BC-SKHCN" in numbered.tables[0].rows[0].cells[0].text
    body = "\n".join(p.text for p in numbered.paragraphs)
    assert "DỰ THẢO" not in body and "Nông Thị Hạnh" in "\n".join(
        c.text for row in numbered.tables[-1].rows for c in row.cells
    )  # signed by the director who approved
    assert EDITABLE_COPY_MARK in body  # the DOCX says it is not the signed original

    # The PDF carries the director's signature, then the agency's, both valid against the roots;
    # the audit log names each signer, their certificate and the file as signed.
    checks = await asyncio.to_thread(verify, issued.pdf, trust_roots=signers.trust_roots())
    assert [(c.field, c.verdict, c.intact, c.trusted) for c in checks] == [
        ("director", Verdict.valid, True, True),
        ("agency", Verdict.valid, True, True),
    ], [c.problem for c in checks]
    assert checks[0].signer.startswith("Nông Thị Hạnh") and checks[1].signer.startswith("Sở Khoa học")
    assert [(s["signed_as"], s["fingerprint"], s["test"]) for s in signatures] == [
        ("director", checks[0].fingerprint, True),
        ("agency", checks[1].fingerprint, True),
    ]
    assert plan.official(signatures[0]["by"]).name == "Nông Thị Hạnh" and signatures[1]["by"] == "dost"
    assert signatures[1]["digest"] == document_digest(issued.pdf) == audited[0]["signed_pdf_sha256"]
    assert document_digest(issued.pdf) != signatures[0]["digest"]  # the seal came after the director
    answer = await client.get(f"/api/v1/reports/annual/{year}/signatures", headers=accounts.as_coordinator)
    assert answer.status_code == 200, answer.text
    shown = answer.json()
    assert shown["number"] == "1/BC-SKHCN" and shown["test_certificates"] is True
    assert [(s["field"], s["verdict"], s["fingerprint"]) for s in shown["signatures"]] == [
        ("director", "valid", checks[0].fingerprint),
        ("agency", "valid", checks[1].fingerprint),
    ]
    page = (await client.get(f"/reports/annual/{year}/units", headers=accounts.as_viewer)).text
    assert "Chữ ký số của báo cáo 1/BC-SKHCN" in page and "CHỨNG THƯ THỬ NGHIỆM" in page
    assert page.count(": hợp lệ") == 2, page  # each signature's verdict, on the dashboard too

    served = await client.get(
        f"/api/v1/reports/annual/{year}", params={"format": "pdf"}, headers=accounts.as_coordinator
    )
    assert served.status_code == 200 and served.content == issued.pdf  # as issued, not a new draft


async def test_cancelling_the_cycle_closes_the_consolidation_form_and_its_draft(client, database, settings):
    _year, cycle_id = await year_with_reports(database, settings, client, 2089)
    request_id, token, _ = await consolidation_opened(database, settings, cycle_id)
    async with database.transaction() as session:
        await coordination.cancel_cycle(session, cycle_id=cycle_id, reason="Điều chỉnh", by="test", now=utcnow())
    assert (await client.get(f"/s/{token}")).status_code == 404
    assert (await client.get(f"/s/{token}/draft.pdf")).status_code == 404
    refused = await client.post(f"/s/{token}", data={"text": "Muộn"})
    assert refused.status_code == 404
    async with database.sessions() as session:
        request = await session.get(ApprovalRequest, request_id)
        files = (await session.execute(select(SubmissionFile).where(SubmissionFile.request_id == request_id))).all()
    assert request.status == "expired" and files == []
