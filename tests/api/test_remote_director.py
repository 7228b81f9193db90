"""A director who signs the issued report on the phone (issue 24, 'remote signing confirmed on the
phone'), against the fake SmartCA-shaped provider (tests/support/fake_remote_signer.py): the issue
asks once and answers None (the run waits), the pollers record the answer once and queue one wake
of the run, and the issue then finishes the director's signature from what was kept and goes on:
number, seal, emails, audit. A request refused or lapsed is told once (the run fails and the
coordinators hear of it), and trying again asks the director again. A provider down while it is
polled changes nothing but when it is asked next."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select, update

from approvals.consolidated.issuing import issue
from approvals.consolidated.remote_director import poll_remote_signatures
from approvals.db import utcnow
from approvals.models import AuditEvent, Wake
from approvals.plan import load_plan
from approvals.report_models import IssuedReport, RemoteSignature
from approvals.routing.stages import WakeReason
from approvals.signing.errors import RemoteSignatureLapsed
from approvals.signing.signers import load_signing_file
from approvals.signing.verification import Verdict, verify
from approvals.statuses import WakeStatus
from notifications.emails import Emails
from notifications.render import Renderer
from tests.api.consolidation_steps import submitted_report
from tests.support.remote_director import PHONE_USER, remote_signing_folder

STAGE = "consolidated_report"


@pytest.fixture
def remote_signers(tmp_path, fake_remote_signer):
    """The signing file of a director who signs at the fake provider, and an agency with a PKCS#12 seal."""
    made = remote_signing_folder(tmp_path / "signing", fake_remote_signer)
    return load_signing_file(made.signing_file, environ=made.environ)


async def _approved_report(client, database, settings, year):
    _, cycle_id, request_id, director = await submitted_report(client, database, settings, year)
    assert (await client.post(f"/a/{director}", data={"outcome": "approve", "comment": ""})).status_code == 200
    plan = load_plan(settings.plan_file)

    async def issuing(signers):
        return await issue(
            database,
            plan=plan,
            cycle_id=cycle_id,
            stage_id=STAGE,
            send=Emails.of(plan, settings, Renderer()).report_issued,
            signers=signers,
        )

    return cycle_id, request_id, issuing


async def _wakes(database, cycle_id) -> list[tuple[str, str, str]]:
    """The wakes the director's answer queued (the approval queued the stage's own before)."""
    async with database.sessions() as session:
        rows = (
            await session.execute(
                select(Wake).where(Wake.cycle_id == cycle_id, Wake.reason == WakeReason.signature_answered)
            )
        ).scalars()
        return [(w.stage, w.reason, w.status) for w in rows]


async def _settled_wake_delivered(database, cycle_id) -> None:
    """As the service does before the run issues the report: the approval's wake of the stage
    delivered (one queued wake per stage, so the answer's wake needs it gone)."""
    async with database.transaction() as session:
        await session.execute(
            update(Wake).where(Wake.cycle_id == cycle_id).values(status=WakeStatus.done.value, done_at=utcnow())
        )


async def _requests(database, cycle_id) -> list[tuple[str, str]]:
    async with database.sessions() as session:
        rows = (
            await session.execute(
                select(RemoteSignature)
                .where(RemoteSignature.cycle_id == cycle_id)
                .order_by(RemoteSignature.requested_at)
            )
        ).scalars()
        return [(r.transaction_id, r.status) for r in rows]


async def _audited(database, request_id, action) -> list[dict]:
    async with database.sessions() as session:
        rows = (
            await session.execute(
                select(AuditEvent).where(AuditEvent.entity_id == str(request_id), AuditEvent.action == action)
            )
        ).scalars()
        return [r.data for r in rows]


async def test_the_director_confirms_on_the_phone_and_the_report_is_issued_signed_once(
    client, database, settings, accounts, fake_remote_signer, remote_signers
):
    cycle_id, request_id, issuing = await _approved_report(client, database, settings, 2082)
    await _settled_wake_delivered(database, cycle_id)

    assert await issuing(remote_signers) is None  # asked: the run waits
    asked = fake_remote_signer.wait_for_prompt(PHONE_USER)
    assert asked.description == "Ký số báo cáo BC-SKHCN năm 2082"
    page = (await client.get("/reports/annual/2082/units", headers=accounts.as_viewer)).text
    assert "Đang chờ đồng chí Nông Thị Hạnh xác nhận ký số trên điện thoại" in page  # what it waits on
    assert await issuing(remote_signers) is None  # a replayed run asks nothing more
    assert fake_remote_signer.prompts(PHONE_USER) == [asked.transaction_id]
    assert len(fake_remote_signer.signature_requests()) == 1
    requested = await _audited(database, request_id, "report.signature_requested")
    assert [r["transaction_id"] for r in requested] == [asked.transaction_id]

    signers = lambda: remote_signers  # noqa: E731
    assert asked.transaction_id not in await poll_remote_signatures(database, signers=signers)  # not confirmed
    assert await _wakes(database, cycle_id) == []

    fake_remote_signer.confirm(asked.transaction_id)
    later = utcnow() + dt.timedelta(seconds=6)  # past the next poll
    answered = await asyncio.gather(*(poll_remote_signatures(database, signers=signers, now=later) for _ in range(3)))
    assert sum(ids.count(asked.transaction_id) for ids in answered) == 1  # pollers racing record it once
    assert await _wakes(database, cycle_id) == [(STAGE, WakeReason.signature_answered, WakeStatus.queued.value)]
    assert await _requests(database, cycle_id) == [(asked.transaction_id, "signed")]

    issued = await issuing(remote_signers)
    assert issued is not None and (issued.new, issued.number) == (True, 1)
    page = (await client.get("/reports/annual/2082/units", headers=accounts.as_viewer)).text
    assert "xác nhận ký số trên điện thoại" not in page and 'id="signatures"' in page
    assert fake_remote_signer.prompts(PHONE_USER) == [asked.transaction_id]  # still asked once
    async with database.sessions() as session:
        pdf = (await session.execute(select(IssuedReport.pdf).where(IssuedReport.cycle_id == cycle_id))).scalar_one()
    checks = await asyncio.to_thread(verify, pdf, trust_roots=remote_signers.trust_roots())
    assert [(c.field, c.signer.split(" (")[0], c.verdict) for c in checks] == [
        ("director", "Nông Thị Hạnh", Verdict.valid),
        ("agency", "Sở Khoa học và Công nghệ", Verdict.valid),
    ]
    signed = await _audited(database, request_id, "report.signed")
    assert [s["signed_as"] for s in signed] == ["director", "agency"]
    assert signed[0]["fingerprint"] == requested[0]["fingerprint"] == checks[0].fingerprint
    again = await issuing(remote_signers)
    assert again is not None and (again.new, again.number) == (False, 1)


@pytest.mark.parametrize(("year", "answer"), [(2084, "refuse"), (2085, "expire")])
async def test_a_refused_or_lapsed_request_is_told_once_then_asked_again(
    client, database, settings, accounts, fake_remote_signer, remote_signers, year, answer
):
    cycle_id, _, issuing = await _approved_report(client, database, settings, year)
    await _settled_wake_delivered(database, cycle_id)
    assert await issuing(remote_signers) is None
    first = fake_remote_signer.wait_for_prompt(PHONE_USER)
    signers = lambda: remote_signers  # noqa: E731
    if answer == "refuse":
        fake_remote_signer.refuse(first.transaction_id)
        polled_at = utcnow() + dt.timedelta(seconds=6)
        said = "refused the request on the phone"
    else:  # nobody confirms: past the request's own time (15 minutes), whatever the provider says
        polled_at = utcnow() + dt.timedelta(minutes=16)
        said = "did not confirm on the phone within 15 minutes"
    assert first.transaction_id in await poll_remote_signatures(database, signers=signers, now=polled_at)
    assert await _wakes(database, cycle_id) == [(STAGE, WakeReason.signature_answered, WakeStatus.queued.value)]

    with pytest.raises(RemoteSignatureLapsed, match=said):
        await issuing(remote_signers)  # the run fails: the coordinators are told
    page = (await client.get(f"/reports/annual/{year}/units?lang=en", headers=accounts.as_viewer)).text
    assert "Nông Thị Hạnh did not sign" in page and "Restart the cycle" in page
    async with database.sessions() as session:
        taken = await session.scalar(
            select(func.count()).select_from(IssuedReport).where(IssuedReport.cycle_id == cycle_id)
        )
    assert taken == 0  # nothing issued: no number taken

    assert await issuing(remote_signers) is None  # tried again (the cycle restarted): asked anew
    assert len(fake_remote_signer.prompts(PHONE_USER)) == 2
    second = fake_remote_signer.prompts(PHONE_USER)[1]
    assert second != first.transaction_id
    assert await _requests(database, cycle_id) == [(first.transaction_id, "lapsed"), (second, "awaiting")]


async def test_a_provider_down_while_polled_changes_nothing_but_when_it_is_asked_next(
    client, database, settings, fake_remote_signer, remote_signers
):
    cycle_id, _, issuing = await _approved_report(client, database, settings, 2090)
    assert await issuing(remote_signers) is None
    asked = fake_remote_signer.wait_for_prompt(PHONE_USER)
    fake_remote_signer.confirm(asked.transaction_id)
    fake_remote_signer.fail_with(503)
    signers = lambda: remote_signers  # noqa: E731
    soon = utcnow() + dt.timedelta(seconds=6)
    assert asked.transaction_id not in await poll_remote_signatures(database, signers=signers, now=soon)
    assert await _requests(database, cycle_id) == [(asked.transaction_id, "awaiting")]
    assert await _wakes(database, cycle_id) == []
    async with database.sessions() as session:
        row = (await session.execute(select(RemoteSignature).where(RemoteSignature.cycle_id == cycle_id))).scalar_one()
    assert row.next_poll_at > soon  # asked later, backing off
    fake_remote_signer.fail_with(None)
    assert asked.transaction_id in await poll_remote_signatures(database, signers=signers, now=row.next_poll_at)
    assert await _requests(database, cycle_id) == [(asked.transaction_id, "signed")]
