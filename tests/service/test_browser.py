"""An official on a phone: the link from the real email, opened in Chromium at 360 px,
one choice, a comment, one confirming tap, the receipt page; the flow run completes."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.service.helpers import ARTIFACTS, chromium, cycle_snapshot, open_cycle
from tests.support.officials import after_a_rejected_orientation

pytestmark = pytest.mark.e2e

PHONE = {
    "viewport": {"width": 360, "height": 740},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "vi-VN",
}
COMMENT = "Đề nghị bổ sung kênh phát thanh cơ sở và lịch cụ thể theo quý."


def no_horizontal_overflow(page) -> None:
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 360, f"the page is {width}px wide on a 360px screen"


def test_official_decides_on_a_phone(stack):
    year = stack.year(10)
    run_id, link = open_cycle(stack, year)
    before = cycle_snapshot(stack, year)
    ARTIFACTS.mkdir(exist_ok=True)

    with chromium() as browser:
        context = browser.new_context(**PHONE)
        page = context.new_page()
        seen = []  # every request the page makes: (method, url, headers)
        page.on("request", lambda r: seen.append((r.method, r.url, r.headers)))
        loads = []
        page.on("load", lambda: loads.append(page.url))

        assert page.goto(link).status == 200
        assert "Định hướng truyền thông của năm" in page.locator("h1").inner_text()
        assert "Đoàn Thị Bích" in page.locator("main").inner_text()  # the page says whom it is for
        assert page.locator("html").get_attribute("lang") == "vi"
        no_horizontal_overflow(page)
        confirm = page.locator("form.card button[type=submit]")  # the decision's, not the queue's
        assert not confirm.is_visible()  # nothing to confirm before a choice
        page.screenshot(path=str(ARTIFACTS / "approval-360-start.png"), full_page=True)

        page.locator("label[for=o-reject]").tap()
        assert confirm.is_visible()  # one more tap away, and no page load in between
        assert confirm.inner_text().strip() == "Xác nhận: Từ chối"
        page.locator("textarea[name=comment]").fill(COMMENT)
        assert len(loads) == 1 and len(seen) == 1
        no_horizontal_overflow(page)
        page.screenshot(path=str(ARTIFACTS / "approval-360.png"), full_page=True)
        assert cycle_snapshot(stack, year) == before  # choosing and typing decided nothing

        with page.expect_navigation():
            confirm.tap()
        assert "Đã ghi nhận" in page.locator("h1").inner_text()
        assert "Từ chối" in page.locator("main").inner_text()
        no_horizontal_overflow(page)
        page.screenshot(path=str(ARTIFACTS / "approval-360-done.png"), full_page=True)
        context.close()

    # Two documents, nothing else (no scripts, styles, fonts or images from anywhere), no Referer.
    assert [(method, url) for method, url, _ in seen] == [("GET", link), ("POST", link)]
    assert all("referer" not in headers for _, _, headers in seen)

    after_a_rejected_orientation(stack, year, run_id)
    after = cycle_snapshot(stack, year)
    assert after["request_status"] == "rejected" and after["stage"] == "rejected"
    assert after["decisions"] == 1
    with stack.reading() as conn:
        row = conn.execute(
            text(
                "SELECT d.outcome, d.comment, d.official_id FROM decision d "
                "JOIN approval_request r ON r.id = d.request_id "
                "JOIN cycle c ON c.id = r.cycle_id WHERE c.kind = 'annual' AND c.period = :p"
            ),
            {"p": str(year)},
        ).one()
    assert tuple(row) == ("reject", COMMENT, "dcst_director")
