"""A coordinator's overview in Chromium (issue 22, part 3): a cycle started late, its dates
shifted, owes nothing before its shifted opening; the report card gives the shifted dates and
marks no unit overdue; stage 6 says the implementation is under way; the per-unit table is one
click away, below the cycles' progress."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tests.service.helpers import ARTIFACTS, chromium

pytestmark = pytest.mark.e2e
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def _shifted_cycle_in_implementation(stack, year: int) -> dt.date:
    """The year's cycle shifted as `kehoach demo` shifts one started late (its start moved to
    today), with stage 6 under way; the report step's shifted opening day."""
    from approvals.db import Database
    from approvals.routing import stages, steps
    from approvals.statuses import StageStatus

    today = dt.datetime.now(TZ).date()
    shift = (today - dt.date(year, 1, 15)).days

    async def seed() -> None:
        db = Database(stack.sandbox.url)
        try:
            async with db.transaction() as session:
                cycle = await steps.get_or_create_cycle(
                    session, kind="annual", period=str(year), starts_on=dt.date(year, 1, 15)
                )
                cycle.shift_days = shift
                await stages.set_stage_status(
                    session,
                    cycle_id=cycle.id,
                    stage="implementation",
                    status=StageStatus.waiting,
                    now=dt.datetime.now(dt.UTC),
                )
        finally:
            await db.dispose()

    asyncio.run(seed())
    return dt.date(year, 10, 1) + dt.timedelta(days=shift)


def test_the_overview_of_a_shifted_cycle_in_a_browser(stack):
    year = stack.past_year(11)
    opens = _shifted_cycle_in_implementation(stack, year)
    due = dt.date(year, 11, 29) + (opens - dt.date(year, 10, 1))
    token = stack.api_token("viewer")
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 800}, locale="vi-VN").new_page()
        assert page.goto(f"{stack.base_url}/login").status == 200
        page.locator("input[name=token]").fill(token)
        with page.expect_navigation():
            page.locator("button[type=submit]").click()
        assert page.goto(f"{stack.base_url}/?year={year}").status == 200
        page.screenshot(path=str(ARTIFACTS / "dashboard-shifted.png"), full_page=False)

        # The first screen: the cycle's progress, stage 6 under way (not waiting for approval).
        stage_6 = page.locator("tr").filter(has_text="Triển khai: chu kỳ văn hóa").first
        assert stage_6.is_visible() and stage_6.bounding_box()["y"] < 800
        row = stage_6.inner_text()
        assert "Đang triển khai" in row and "Đang chờ phê duyệt" not in row and "0/0" not in row, row

        # The report card: the shifted dates, nobody overdue before the step opened.
        card = page.locator("#annual-report")
        text = card.inner_text()
        assert f"Mở ngày {opens:%d/%m/%Y}" in text and f"{due:%d/%m/%Y}" in text, text
        assert f"29/11/{year}" not in text and "Quá hạn" not in text, text
        assert card.bounding_box()["y"] > stage_6.bounding_box()["y"]  # below the progress

        # One click to every unit: none past due, all waiting for their opening day.
        with page.expect_navigation():
            card.locator(f"a[href='/reports/annual/{year}/units']").click()
        page.screenshot(path=str(ARTIFACTS / "dashboard-shifted-units.png"), full_page=True)
        statuses = page.locator("table tbody tr td span").all_inner_texts()
        assert len(statuses) >= 85 and set(statuses) == {"Chưa đến ngày mở"}, set(statuses)
        assert "quá hạn" not in page.locator("main").inner_text().lower()
