"""A report whose signature cannot be made issues nothing (issue 24, 'nothing is issued
half-way'): a wrong password for the director's key, or an agency certificate that expired,
raises a clear error and leaves no number taken, no record, no email and no audit row; once the
signing file's fault is mended, the same issue goes through, numbered 1."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from approvals.consolidated.issuing import issue
from approvals.models import AuditEvent
from approvals.plan import load_plan
from approvals.report_models import IssuedReport
from approvals.signing.errors import SignerLocked, SigningRefused
from approvals.signing.signers import load_signing_file
from approvals.signing.test_images import draw_test_seal, draw_test_signature
from approvals.signing.test_pki import TestAuthority
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.render import Renderer
from tests.api.consolidation_steps import submitted_report


def _signing_file(folder, *, agency_expired: bool):
    authority = TestAuthority.create()
    now = dt.datetime.now(dt.UTC)
    director = authority.issue("Nông Thị Hạnh", organisation="Sở Khoa học và Công nghệ")
    agency = authority.issue(
        "Sở Khoa học và Công nghệ",
        organisation="UBND tỉnh Lạng Sơn",
        **(
            {"not_before": now - dt.timedelta(days=800), "not_after": now - dt.timedelta(days=1)}
            if agency_expired
            else {}
        ),
    )
    (folder / "root.pem").write_bytes(authority.identity.certificate_pem())
    (folder / "director.p12").write_bytes(director.pkcs12(b"director-pw"))
    (folder / "agency.p12").write_bytes(agency.pkcs12(b"agency-pw"))
    (folder / "signature.png").write_bytes(draw_test_signature("Nông Thị Hạnh"))
    (folder / "seal.png").write_bytes(draw_test_seal("Sở Khoa học và Công nghệ"))
    path = folder / "signing.yaml"
    path.write_text(
        f"""directors:
  dost_director:
    kind: pkcs12
    file: {folder / "director.p12"}
    password_env: DIRECTOR_PW
    image: {folder / "signature.png"}
agencies:
  dost: {{kind: pkcs12, file: {folder / "agency.p12"}, password_env: AGENCY_PW, image: {folder / "seal.png"}}}
trust_roots: [{folder / "root.pem"}]
""",
        encoding="utf-8",
    )
    return path


async def _left_behind(database, cycle_id, request_id) -> tuple[int, int, int]:
    async with database.sessions() as session:
        issued = await session.scalar(
            select(func.count()).select_from(IssuedReport).where(IssuedReport.cycle_id == cycle_id)
        )
        emails = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == "report_issued", OutboxMessage.idempotency_key.contains(str(cycle_id)))
        )
        audited = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.entity_id == str(request_id), AuditEvent.action.in_(("report.signed", "report.issued")))
        )
    return issued, emails, audited


@pytest.mark.parametrize(
    ("year", "fault", "error", "said"),
    [
        (2091, "wrong_password", SignerLocked, "wrong password"),
        (2092, "agency_expired", SigningRefused, "has expired"),
    ],
)
async def test_a_signature_that_cannot_be_made_issues_nothing_until_mended(
    client, database, settings, tmp_path, year, fault, error, said
):
    _, cycle_id, request_id, director = await submitted_report(client, database, settings, year)
    assert (await client.post(f"/a/{director}", data={"outcome": "approve", "comment": ""})).status_code == 200
    plan = load_plan(settings.plan_file)
    send = Emails.of(plan, settings, Renderer()).report_issued
    good = {"DIRECTOR_PW": "director-pw", "AGENCY_PW": "agency-pw"}
    faulty = _signing_file(tmp_path, agency_expired=fault == "agency_expired")
    environ = {**good, "DIRECTOR_PW": "not-it"} if fault == "wrong_password" else good

    with pytest.raises(error, match=said):
        await issue(
            database,
            plan=plan,
            cycle_id=cycle_id,
            stage_id="consolidated_report",
            send=send,
            signers=load_signing_file(faulty, environ=environ),
        )
    assert await _left_behind(database, cycle_id, request_id) == (0, 0, 0)

    mended = tmp_path / "mended"
    mended.mkdir()
    issued = await issue(
        database,
        plan=plan,
        cycle_id=cycle_id,
        stage_id="consolidated_report",
        send=send,
        signers=load_signing_file(_signing_file(mended, agency_expired=False), environ=good),
    )
    assert (issued.new, issued.number) == (True, 1)  # the failed try took no number
    assert await _left_behind(database, cycle_id, request_id) == (1, len(issued.recipients), 3)
