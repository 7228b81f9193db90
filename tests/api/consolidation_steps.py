"""The consolidated report's step (stage 8) brought to where a test needs it, through its links
in process: a year whose units reported, the coordinator's form opened, the draft submitted
with the director asked (tests/api/test_consolidation.py, tests/api/test_issue_refused.py)."""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid

from sqlalchemy import select

from approvals.db import utcnow
from approvals.models import Assignment, Cycle
from approvals.plan import load_plan
from approvals.routing import steps
from approvals.routing.submissions import open_submission
from approvals.tokens import derive_token
from tests.api.conftest import live_token

SUMMARY = "Các đơn vị đã triển khai đầy đủ.\nĐề nghị UBND tỉnh đôn đốc Hội Liên hiệp Phụ nữ tỉnh."


async def year_with_reports(database, settings, client, year: int) -> tuple[int, uuid.UUID]:
    """An annual cycle of its own year (each test has one: the sandbox is shared) whose report
    stage asked two units: the Department of Finance reported (with a file), the Women's Union
    sent nothing."""
    plan = load_plan(settings.plan_file)
    async with database.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="annual", period=str(year), starts_on=dt.date(year, 1, 15)
        )
        tokens = {}
        for unit in ("dof", "womens_union"):
            opened = await open_submission(
                session,
                plan=plan,
                secret=settings.link_secret_bytes(),
                cycle=cycle,
                stage_id="annual_report",
                subject=unit,
                waiter_ref=None,
                now=utcnow(),
                link_ttl=dt.timedelta(days=30),
            )
            tokens[unit] = derive_token(settings.link_secret_bytes(), opened.asked.link.id, 1)
    sent = await client.post(
        f"/s/{tokens['dof']}",
        data={"text": "Báo cáo của Sở Tài chính năm nay.", "field_area_policy": "Phổ biến Luật Ngân sách."},
        files={"files": ("so-lieu.txt", "Số liệu".encode(), "text/plain")},
    )
    assert sent.status_code == 200, sent.text
    return year, cycle.id


async def consolidation_opened(database, settings, cycle_id) -> tuple[uuid.UUID, str, str]:
    async with database.transaction() as session:
        cycle = await session.get(Cycle, cycle_id)
        opened = await open_submission(
            session,
            plan=load_plan(settings.plan_file),
            secret=settings.link_secret_bytes(),
            cycle=cycle,
            stage_id="consolidated_report",
            subject="",
            waiter_ref=None,
            now=utcnow(),
            link_ttl=dt.timedelta(days=30),
        )
    token = derive_token(settings.link_secret_bytes(), opened.asked.link.id, 1)
    return opened.opened.request.id, token, opened.asked.official.id


async def director_link(database, settings, request_id) -> str:
    async with database.sessions() as session:
        assignment = (await session.execute(select(Assignment).where(Assignment.request_id == request_id))).scalar_one()
    assert assignment.official_id == "dost_director"
    return await live_token(database, settings, assignment.id)


async def submitted_report(client, database, settings, year: int) -> tuple[int, uuid.UUID, uuid.UUID, str]:
    year, cycle_id = await year_with_reports(database, settings, client, year)
    request_id, token, _ = await consolidation_opened(database, settings, cycle_id)
    sent = await client.post(f"/s/{token}", data={"text": unicodedata.normalize("NFD", SUMMARY), "lang": "en"})
    assert sent.status_code == 200 and "Submitted" in sent.text
    return year, cycle_id, request_id, await director_link(database, settings, request_id)
