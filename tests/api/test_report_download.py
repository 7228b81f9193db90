"""An issued report too large to attach (issue 24, 'a large report is still delivered'): each
recipient's email carries a download link of its own instead of the files; the link serves the
signed PDF (and the DOCX copy) to that recipient, and a forged link, a link for an agency the
report did not go to, or another cycle's, opens nothing."""

from __future__ import annotations

import datetime as dt
import random
import re

from sqlalchemy import select

from approvals.db import utcnow
from approvals.plan import load_plan
from approvals.report_models import IssuedReport
from approvals.tokens import REPORT_LINK, report_link_resolver, report_link_token
from notifications.composing import PLACEHOLDER
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.outbox import MAX_ATTACHMENT_BYTES
from notifications.render import Renderer
from tests.api.queue_steps import new_cycle, open_asked
from tests.support.report_document import annual_report, report_document

PDF = b"%PDF-1.7 signed original " + random.randbytes(MAX_ATTACHMENT_BYTES)  # alone past the limit
DOCX = b"PK editable copy"


async def _issued_too_large(database, settings):
    plan = load_plan(settings.plan_file)
    cycle = await new_cycle(database)
    request_id = await open_asked(database, settings, cycle, "consolidated_report")
    report, written = annual_report(), report_document(number=random.randint(10_000, 10**9))
    files = [("bao-cao.docx", "application/octet-stream", DOCX), ("bao-cao.pdf", "application/pdf", PDF)]
    async with database.transaction() as session:
        session.add(
            IssuedReport(
                cycle_id=cycle.id,
                request_id=request_id,
                year=report.year,
                symbol="BC-SKHCN",
                number=int(written.number.removeprefix("Số: ").split("/")[0]),
                issued_on=dt.date(2026, 12, 5),
                recipients=[{"agency": a.id, "email": str(a.email)} for a in report.recipients],
                docx=DOCX,
                pdf=PDF,
            )
        )
        await session.flush()
        queued = await Emails.of(plan, settings, Renderer()).report_issued(
            session, cycle_id=cycle.id, report=report, document=written, files=files
        )
    async with database.sessions() as session:
        sent = list(
            (
                await session.execute(
                    select(OutboxMessage).where(OutboxMessage.idempotency_key.contains(f"report_issued:{cycle.id}:"))
                )
            ).scalars()
        )
    return cycle, report, queued, sent


async def test_each_recipient_gets_a_link_of_its_own_that_downloads_the_signed_original(client, database, settings):
    cycle, report, queued, sent = await _issued_too_large(database, settings)
    assert queued == len(sent) == len([a for a in report.recipients if a.email]) >= 2
    resolve = report_link_resolver(settings.link_secret_bytes(), settings.public_base_url, ttl_seconds=3600)
    links = {}
    for message in sent:
        assert message.attachments == []  # nothing the outbox would refuse
        assert "lớn hơn giới hạn tệp đính kèm" in message.text_body and "Tải báo cáo" in message.html_body
        assert "/bao-cao/" not in message.text_body  # the outbox holds a placeholder, never a token
        [(kind, argument)] = PLACEHOLDER.findall(message.text_body)
        assert kind == REPORT_LINK and argument.startswith(f"{cycle.id}:")
        links[argument.split(":", 1)[1]] = resolve(argument)
    assert sorted(links) == sorted(a.id for a in report.recipients if a.email)

    for link in links.values():
        path = link.removeprefix(settings.public_base_url)
        pdf = await client.get(path)
        assert pdf.status_code == 200 and pdf.content == PDF and pdf.headers["content-type"] == "application/pdf"
        assert "no-store" in pdf.headers["cache-control"]
        docx = await client.get(path, params={"format": "docx"})
        assert docx.status_code == 200 and docx.content == DOCX


async def test_a_forged_foreign_or_expired_report_link_opens_nothing(client, database, settings):
    cycle, _report, _queued, _sent = await _issued_too_large(database, settings)
    secret, later = settings.link_secret_bytes(), int(utcnow().timestamp()) + 3600
    good = report_link_token(secret, str(cycle.id), "ppc", later)
    assert (await client.get(f"/bao-cao/{good}")).status_code == 200
    forged = re.sub(r".$", lambda m: "A" if m.group(0) != "A" else "B", good)
    not_a_recipient = report_link_token(secret, str(cycle.id), "dof", later)
    other_cycle = report_link_token(secret, str((await new_cycle(database)).id), "ppc", later)
    expired = report_link_token(secret, str(cycle.id), "ppc", int(utcnow().timestamp()) - 1)
    other_secret = report_link_token(b"x" * 48, str(cycle.id), "ppc", later)
    for token in (forged, not_a_recipient, other_cycle, expired, other_secret):
        answer = await client.get(f"/bao-cao/{token}")
        assert answer.status_code == 404 and PDF[:20] not in answer.content, token
    assert (await client.get(f"/bao-cao/{good}", params={"format": "exe"})).status_code == 404
