"""A unit's budget officer on a phone: the form link from the real email, opened in Chromium
at 360 px, the text, the amount in VND and a PDF attached, one tap; the DoF director is then
asked, and sees the amount the Vietnamese way and the file."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import pytest
from sqlalchemy import text

from tests.service.helpers import ARTIFACTS, chromium
from tests.service.test_browser import PHONE, no_horizontal_overflow
from tests.support import local_http

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
FORM = re.compile(r"(http://127\.0\.0\.1:\d+/s/[A-Za-z0-9_-]+)")
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/a/[A-Za-z0-9_-]+)")


def _ask_for_the_budget(stack, period: str) -> None:
    """What the annual flow's stage 5 does: the step waits for the DoF, whose officer is emailed a form link."""
    from approvals.config import Settings
    from approvals.db import Database, utcnow
    from approvals.plan import load_plan
    from approvals.routing import steps
    from approvals.routing.submissions import open_submission
    from notifications.emails import Emails
    from notifications.render import Renderer

    settings = Settings(
        database_url=stack.sandbox.url, link_secret=stack.env["KEHOACH_LINK_SECRET"], public_base_url=stack.base_url
    )
    plan = load_plan(settings.plan_file)

    async def ask() -> None:
        db = Database(stack.sandbox.url)
        try:
            async with db.transaction() as session:
                cycle = await steps.get_or_create_cycle(
                    session, kind="annual", period=period, starts_on=dt.date(2026, 1, 15)
                )
                opened = await open_submission(
                    session,
                    plan=plan,
                    secret=settings.link_secret_bytes(),
                    cycle=cycle,
                    stage_id="finance_allocation",
                    subject="",
                    waiter_ref=None,
                    now=utcnow(),
                    link_ttl=dt.timedelta(days=30),
                )
                await Emails.of(plan, settings, Renderer()).submission_link(
                    session, opened.opened.request, cycle, opened.asked
                )
        finally:
            await db.dispose()

    asyncio.run(ask())


def test_a_budget_is_submitted_on_a_phone(stack, tmp_path):
    period = f"{stack.year(16)}-ngan-sach"
    _ask_for_the_budget(stack, period)
    email = stack.smtp.wait_for(
        lambda r: (
            "ngansach.stc@lang-son.example" in r.envelope_to and "Cần gửi nội dung" in r.subject and period in r.subject
        )
    )
    (form,) = set(FORM.findall(email.text))
    pdf = tmp_path / "Dự toán 2026.pdf"
    pdf.write_bytes(PDF)
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium() as browser:
        context = browser.new_context(**PHONE)
        page = context.new_page()
        assert page.goto(form).status == 200
        assert "Bố trí kinh phí" in page.locator("h1").inner_text()
        no_horizontal_overflow(page)
        page.locator("textarea[name=text]").fill("Dự toán kinh phí truyền thông năm cho các đơn vị.")
        page.locator("input[name=amount]").fill("1.500.000.000")
        page.locator("input[name=files]").set_input_files(str(pdf))
        page.screenshot(path=str(ARTIFACTS / "submission-360-filled.png"), full_page=True)
        with page.expect_navigation():
            page.locator("button[type=submit]").tap()
        assert "Đã nộp" in page.locator("h1").inner_text()
        page.screenshot(path=str(ARTIFACTS / "submission-360-done.png"), full_page=True)
        context.close()

    with stack.reading() as conn:
        (status,) = conn.execute(
            text("SELECT r.status FROM approval_request r JOIN cycle c ON c.id = r.cycle_id WHERE c.period = :p"),
            {"p": period},
        ).one()
        files = conn.execute(
            text(
                "SELECT f.filename, f.size FROM submission_file f JOIN approval_request r "
                "ON r.id = f.request_id JOIN cycle c ON c.id = r.cycle_id WHERE c.period = :p"
            ),
            {"p": period},
        ).all()
    assert status == "pending" and files == [("Dự toán 2026.pdf", len(PDF))]

    asked = stack.smtp.wait_for(
        lambda r: (
            "giamdoc.stc@lang-son.example" in r.envelope_to and "Cần phê duyệt" in r.subject and period in r.subject
        )
    )
    (link,) = set(LINK.findall(asked.text))
    page = local_http.get(link).text
    assert "1.500.000.000" in page and "Dự toán 2026.pdf" in page
    assert local_http.get(form).status_code == 404  # the form link works once
