"""An official on a phone opens the short link of an SMS (issue 25): in Chromium at 360 px the
link lands on the approval page (one redirect, no page in between), one choice and one
confirming tap decide, and the receipt says so; the running `kehoach web` records it once."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from approvals.db import Database, utcnow
from notifications.short_links import short_link
from tests.service.helpers import ARTIFACTS, chromium, decisions_of, open_direct_request
from tests.service.test_browser import PHONE, no_horizontal_overflow

pytestmark = pytest.mark.e2e


def shorten(stack, target: str, official_id: str) -> str:
    """The short link the SMS channel makes for the official's approval link, in the stack's database."""

    async def run() -> str:
        db = Database(stack.sandbox.url)
        try:
            async with db.transaction() as session:
                return await short_link(
                    session,
                    target,
                    official_id,
                    utcnow() + dt.timedelta(days=30),
                    secret=stack.env["KEHOACH_LINK_SECRET"].encode(),
                )
        finally:
            await db.dispose()

    return asyncio.run(run())


def test_the_short_link_of_an_sms_decides_on_a_phone(stack):
    opened = open_direct_request(stack, f"sms-{uuid.uuid4().hex[:10]}")
    official_id = next(iter(opened.tokens))
    target = opened.link(official_id)
    link = shorten(stack, target, official_id)
    assert link.startswith(f"{stack.base_url}/l/") and len(link) < len(target) - 25
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium() as browser:
        context = browser.new_context(**PHONE)
        page = context.new_page()
        seen = []  # every request the page makes: (method, url, headers)
        page.on("request", lambda r: seen.append((r.method, r.url, r.headers)))

        assert page.goto(link).status == 200  # as tapped in the SMS app
        assert page.url == target  # the approval page itself, at its own address
        assert page.locator("form.card input[name=outcome]").count() >= 2
        assert decisions_of(stack, opened.request_id) == []  # opening decided nothing
        no_horizontal_overflow(page)
        page.screenshot(path=str(ARTIFACTS / "short-link-360.png"), full_page=True)

        page.locator("label[for=o-approve]").tap()
        confirm = page.locator("form.card button[type=submit]")
        assert confirm.is_visible()
        with page.expect_navigation():
            confirm.tap()
        assert "Đã ghi nhận" in page.locator("h1").inner_text()
        no_horizontal_overflow(page)
        page.screenshot(path=str(ARTIFACTS / "short-link-360-done.png"), full_page=True)
        context.close()

    assert [(method, url) for method, url, _ in seen] == [("GET", link), ("GET", target), ("POST", target)]
    assert all("referer" not in headers for _, _, headers in seen)
    assert [(o, outcome) for o, outcome, _ in decisions_of(stack, opened.request_id)] == [(official_id, "approve")]
