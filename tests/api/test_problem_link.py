"""A unit raises a problem with the PPC from its own link ("Báo cáo vướng mắc"), in process:
every email that asks an official to act carries the link (a placeholder in the outbox, signed
only as it is sent), every page reached from one shows it; the form records the problem for the
official's own unit, whose escalation cycle the service then starts; a unit abolished in 2025
is refused and pointed to its successors; a bad, tampered or expired link changes nothing."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from sqlalchemy import func, select

from approvals.db import utcnow
from approvals.models import ApprovalRequest, Assignment, AuditEvent, ProblemReport
from approvals.plan import load_plan
from approvals.routing import steps
from approvals.routing.submissions import open_submission
from approvals.tokens import (
    PROBLEM_LINK,
    derive_token,
    problem_link_resolver,
    problem_token,
)
from notifications.emails import Emails
from notifications.models import OutboxMessage
from notifications.render import Renderer
from tests.api.conftest import live_token

PROBLEM = re.compile(r'href="(/p/[A-Za-z0-9_.-]+)"')


@pytest.fixture
def settings(settings):
    """The failed-link limit off: these tests try many bad links on purpose (the limit itself,
    which counts /p/ with /a/ and /s/, is tested in tests/service/test_limits.py)."""
    return settings.model_copy(update={"link_failure_limit": 0})


def _today(settings) -> str:
    return f"{dt.datetime.now(load_plan(settings.plan_file).tz):%Y%m%d}"


async def _problems(database, unit: str) -> int:
    async with database.sessions() as session:
        return (
            await session.execute(select(func.count()).select_from(ProblemReport).where(ProblemReport.unit == unit))
        ).scalar_one()


async def test_a_unit_raises_a_problem_from_the_link_in_its_email(client, database, settings):
    plan = load_plan(settings.plan_file)
    async with database.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="annual", period=f"t-{uuid.uuid4().hex[:12]}", starts_on=dt.date(2094, 1, 15)
        )
        opened = await open_submission(
            session,
            plan=plan,
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id="annual_report",
            subject="pc_ward_ky_lua",
            waiter_ref=None,
            now=utcnow(),
            link_ttl=dt.timedelta(days=30),
        )
        await Emails.of(plan, settings, Renderer()).submission_link(session, opened.opened.request, cycle, opened.asked)
    officer = opened.asked.official
    assert officer.agency == "pc_ward_ky_lua"
    async with database.sessions() as session:
        (email,) = (
            (
                await session.execute(
                    select(OutboxMessage).where(OutboxMessage.idempotency_key.contains(str(opened.asked.link.id)))
                )
            )
            .scalars()
            .all()
        )
    # The outbox keeps a placeholder, never a token; the dispatcher signs it as it sends.
    argument = f"{officer.id}:{_today(settings)}"
    assert f"[[secret:{PROBLEM_LINK}:{argument}]]" in email.text_body and "/p/" not in email.text_body
    assert "Báo cáo vướng mắc lên UBND tỉnh" in email.text_body
    link = problem_link_resolver(settings.link_secret_bytes(), "http://kehoach.test")(argument)
    path = link.removeprefix("http://kehoach.test")

    # The form page the unit's officer reached from the email shows the link too.
    form = await client.get(f"/s/{derive_token(settings.link_secret_bytes(), opened.asked.link.id, 1)}")
    assert PROBLEM.search(form.text).group(1) == path

    page = await client.get(path)
    assert page.status_code == 200 and "Báo cáo vướng mắc lên UBND tỉnh" in page.text
    assert "UBND phường Kỳ Lừa" in page.text and "Dương Xuân Huyên" in page.text  # the unit, and who decides
    before = await _problems(database, "pc_ward_ky_lua")
    empty = await client.post(path, data={"title": "  ", "description": "Chi tiết"})
    assert empty.status_code == 422 and await _problems(database, "pc_ward_ky_lua") == before

    sent = await client.post(
        path,
        data={"title": "Thiếu loa truyền thanh ở thôn", "description": "Ba thôn chưa có loa; đề nghị hỗ trợ kinh phí."},
    )
    assert sent.status_code == 200 and "Đã gửi vướng mắc" in sent.text
    async with database.sessions() as session:
        problem = (
            await session.execute(
                select(ProblemReport)
                .where(ProblemReport.unit == "pc_ward_ky_lua")
                .order_by(ProblemReport.created_at.desc())
                .limit(1)
            )
        ).scalar_one()
        audited = (
            (
                await session.execute(
                    select(AuditEvent.actor).where(
                        AuditEvent.entity_id == str(problem.id), AuditEvent.action == "problem.recorded"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert (problem.title, problem.recorded_by, problem.cycle_id) == (
        "Thiếu loa truyền thanh ở thôn",
        f"official:{officer.id}",
        None,
    )  # the service starts its cycle
    assert audited == [f"official:{officer.id}"]
    again = await client.post(path, data={"title": "Vướng mắc thứ hai", "description": "Chi tiết"})
    assert again.status_code == 200  # one link, as many problems as the unit has
    assert await _problems(database, "pc_ward_ky_lua") == before + 2


async def test_an_abolished_unit_is_refused_and_pointed_to_its_successors(client, database, settings):
    """The DIC merged away on 1 March 2025: its director's link opens a page that says so, names
    the departments that took its duties, and records nothing; nor does the API take it."""
    path = f"/p/{problem_token(settings.link_secret_bytes(), 'dic_director', _today(settings))}"
    before = await _problems(database, "dic")
    page = await client.get(path)
    assert page.status_code == 409 and "không còn hoạt động từ ngày 01/03/2025" in page.text
    assert "Sở Khoa học và Công nghệ" in page.text and "Sở Văn hóa, Thể thao và Du lịch" in page.text
    posted = await client.post(path, data={"title": "Vướng mắc", "description": "Chi tiết"})
    assert posted.status_code == 409
    district = await client.post(
        f"/p/{problem_token(settings.link_secret_bytes(), 'pc_trang_dinh_reporter', _today(settings))}",
        data={"title": "Vướng mắc", "description": "Chi tiết"},
    )
    assert district.status_code == 409 and "UBND huyện Tràng Định" in district.text
    assert await _problems(database, "dic") == before and await _problems(database, "pc_trang_dinh") == 0


async def test_the_api_refuses_a_unit_not_in_force(client, accounts):
    refused = await client.post(
        "/api/v1/problems",
        headers=accounts.as_coordinator,
        json={"title": "Vướng mắc", "description": "Mô tả", "unit": "pc_trang_dinh"},
    )
    assert refused.status_code == 422 and "not in force" in refused.json()["errors"][0]["msg"]


async def test_a_bad_tampered_or_expired_problem_link_gets_the_invalid_page(client, database, settings):
    secret = settings.link_secret_bytes()
    good = problem_token(secret, "dost_press_officer", _today(settings))
    old = f"{dt.datetime.now(load_plan(settings.plan_file).tz) - dt.timedelta(days=settings.link_ttl_days + 1):%Y%m%d}"
    future = f"{dt.datetime.now(load_plan(settings.plan_file).tz) + dt.timedelta(days=2):%Y%m%d}"
    name, issued, mac = good.split(".")
    bad = [
        f"{name}.{issued}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",  # tampered
        f"{name}.{old}.{problem_token(secret, 'dost_press_officer', old).split('.')[2]}",  # expired
        problem_token(secret, "dost_press_officer", future),  # not issued yet
        problem_token(b"another secret" * 4, "dost_press_officer", issued),  # not ours
        problem_token(secret, "nobody_here", issued),  # not in the directory
        "x" * 43,
    ]
    before = await _problems(database, "dost")
    for token in bad:
        for answer in (
            await client.get(f"/p/{token}"),
            await client.post(f"/p/{token}", data={"title": "Vướng mắc", "description": "Chi tiết"}),
        ):
            assert answer.status_code == 404 and "Liên kết không còn hiệu lực" in answer.text, token
    assert (await client.get(f"/p/{good}")).status_code == 200
    assert await _problems(database, "dost") == before


async def test_the_approval_page_and_its_answer_carry_the_deciders_own_link(client, database, settings):
    plan = load_plan(settings.plan_file)
    async with database.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="annual", period=f"t-{uuid.uuid4().hex[:12]}", starts_on=dt.date(2094, 1, 15)
        )
        opened = await open_submission(
            session,
            plan=plan,
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id="materials",
            subject="",
            waiter_ref=None,
            now=utcnow(),
            link_ttl=dt.timedelta(days=30),
        )
    token = derive_token(settings.link_secret_bytes(), opened.asked.link.id, 1)
    done = await client.post(f"/s/{token}", data={"text": "Tài liệu"})
    expected = f"/p/{problem_token(settings.link_secret_bytes(), opened.asked.official.id, _today(settings))}"
    assert PROBLEM.search(done.text).group(1) == expected  # the answer page of the form
    async with database.sessions() as session:
        assignment = (
            await session.execute(
                select(Assignment)
                .join(ApprovalRequest, ApprovalRequest.id == Assignment.request_id)
                .where(ApprovalRequest.cycle_id == cycle.id)
            )
        ).scalar_one()
    approver = await live_token(database, settings, assignment.id)
    mine = f"/p/{problem_token(settings.link_secret_bytes(), assignment.official_id, _today(settings))}"
    assert PROBLEM.search((await client.get(f"/a/{approver}")).text).group(1) == mine
    decided = await client.post(f"/a/{approver}", data={"outcome": "approve", "comment": ""})
    assert PROBLEM.search(decided.text).group(1) == mine
