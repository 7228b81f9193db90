"""An official's queue on a phone (issue 23): from a live link of the real plan, in Chromium at
360 px, the DOST's director opens "Việc chờ đồng chí", filters to one year's annual reports,
selects all 20 units' reports, approves them with one confirmation, and each is decided once
(audit channel "queue") by the running `kehoach web`."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import text

from approvals.db import Database, utcnow
from approvals.plan import load_plan
from approvals.routing import steps
from approvals.tokens import derive_token
from tests.service.helpers import ARTIFACTS, PACKAGED_PLAN, chromium
from tests.service.test_browser import PHONE, no_horizontal_overflow

pytestmark = pytest.mark.e2e

UNITS = 20


def _open_reports(stack, period: str) -> tuple[str, list[str]]:
    """20 units' annual reports of one cycle, each asked of the lead agency's director: the
    cycle's id and the director's live links."""
    secret = stack.env["KEHOACH_LINK_SECRET"].encode()
    plan = load_plan(PACKAGED_PLAN)
    stage = next(s for s in plan.cycle("annual").stages if s.id == "annual_report")

    async def run():
        db = Database(stack.sandbox.url)
        try:
            async with db.transaction() as session:
                now = utcnow()
                cycle = await steps.get_or_create_cycle(session, kind="annual", period=period, starts_on=now.date())
                links = []
                for unit in plan.branches(stage, now.date())[:UNITS]:
                    opened = await steps.open_request(
                        session,
                        plan=plan,
                        secret=secret,
                        cycle=cycle,
                        stage_id="annual_report",
                        subject=unit,
                        waiter_ref=None,
                        link_ttl=dt.timedelta(days=30),
                        now=now,
                    )
                    [new] = opened.new_assignments
                    assert new.official.id == "dost_director"
                    links.append(f"{stack.base_url}/a/{derive_token(secret, new.assignment.id, 1)}")
                return str(cycle.id), links
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_the_director_decides_twenty_reports_from_the_queue_on_a_phone(stack):
    period = f"{stack.year(17)}-queue"
    cycle_id, links = _open_reports(stack, period)
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        context = browser.new_context(**PHONE)
        page = context.new_page()
        assert page.goto(links[0]).status == 200
        with page.expect_navigation():
            page.locator("form.queue-link button").tap()
        assert page.url.startswith(f"{stack.base_url}/hang-doi")
        assert "Việc chờ đồng chí" in page.locator("h1").inner_text()
        no_horizontal_overflow(page)

        page.locator("select[name=cycle]").select_option(cycle_id)
        with page.expect_navigation():
            page.get_by_role("button", name="Lọc").tap()
        with page.expect_navigation():
            page.get_by_role("link", name="Chọn tất cả trong bộ lọc").tap()
        assert page.locator("input[name=b]:checked").count() == UNITS
        page.locator("label[for=o-approve]").tap()
        no_horizontal_overflow(page)
        page.screenshot(path=str(ARTIFACTS / "queue-360.png"), full_page=True)
        with page.expect_navigation():
            page.get_by_role("button", name="Tiếp tục: xem lại và xác nhận").tap()

        assert "Xác nhận 20 bước" in page.locator("h1").inner_text()
        assert page.locator("ol li").count() == UNITS
        no_horizontal_overflow(page)
        with page.expect_navigation():
            page.get_by_role("button", name="Xác nhận: Đồng ý (20 bước)").tap()
        assert "Đã ghi nhận 20/20 bước" in page.locator("main").inner_text()
        no_horizontal_overflow(page)
        page.screenshot(path=str(ARTIFACTS / "queue-360-done.png"), full_page=True)
        context.close()

    with stack.reading() as conn:
        rows = conn.execute(
            text(
                "SELECT r.status, count(d.id) FROM approval_request r JOIN cycle c ON c.id = r.cycle_id "
                "LEFT JOIN decision d ON d.request_id = r.id WHERE c.kind = 'annual' AND c.period = :period "
                "GROUP BY r.id, r.status"
            ),
            {"period": period},
        ).all()
    assert len(rows) == UNITS and all(status == "approved" and decided == 1 for status, decided in rows), rows
