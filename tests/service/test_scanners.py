"""Mail scanners fetch every link, many of them at once, and some run the page: 1,000
GET/HEAD fetches of a live link and a headless browser that loads it and clicks nothing
change nothing; the link then still works."""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest

from tests.service.helpers import chromium, cycle_snapshot, open_cycle
from tests.support import local_http

pytestmark = pytest.mark.e2e

FETCHES = 1000
PARALLEL = 16
SCANNER_HEADERS = [
    {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0"},
    {"User-Agent": "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"},
    {"User-Agent": "Mozilla/5.0 (compatible; SafeLinks)", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},
    {"User-Agent": "Mimecast-Scanner/1.0", "Accept": "*/*", "Sec-Purpose": "prefetch"},
    {"User-Agent": "Proofpoint-URLDefense", "Accept-Language": "en-US"},
]


async def _fetch_all(link: str) -> dict[tuple[str, int], int]:
    """Each fetch's (method, status) counted. A kept-alive connection the server closes as the
    client reuses it (uvicorn closes one idle past its keep-alive time, which a loaded machine
    reaches) is fetched again on a new one, as a scanner would; each connection may go stale at
    most once, so more retries than connections fail the test."""
    plan = itertools.cycle(itertools.product(["GET", "HEAD"], SCANNER_HEADERS, ["", "?lang=en", "?lang=vi&x=1"]))
    jobs = [next(plan) for _ in range(FETCHES)]
    counts: dict[tuple[str, int], int] = {}
    gate = asyncio.Semaphore(PARALLEL)
    limits = httpx.Limits(max_connections=PARALLEL, max_keepalive_connections=PARALLEL)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(method, headers, query):
            async with gate:
                try:
                    response = await client.request(method, link + query, headers=headers)
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    counts[("stale connection", 0)] = counts.get(("stale connection", 0), 0) + 1
                    response = await client.request(method, link + query, headers=headers)
                key = (method, response.status_code)
                counts[key] = counts.get(key, 0) + 1

        await asyncio.wait_for(asyncio.gather(*(one(*job) for job in jobs)), timeout=300)
    return counts


def test_scanners_change_nothing(stack):
    year = stack.year(11)
    run_id, link = open_cycle(stack, year)
    before = cycle_snapshot(stack, year)
    assert before["request_status"] == "pending" and before["decisions"] == 0

    counts = asyncio.run(_fetch_all(link))
    assert counts.pop(("stale connection", 0), 0) <= PARALLEL, counts
    assert set(counts) == {("GET", 200), ("HEAD", 200)} and sum(counts.values()) == FETCHES, counts
    assert cycle_snapshot(stack, year) == before  # no decision, no audit row, no email, token unchanged

    with chromium() as browser:  # a scanner that renders the page and runs whatever it runs, clicking nothing
        page = browser.new_page(java_script_enabled=True)
        requested = []
        page.on("request", lambda r: requested.append((r.method, r.url)))
        assert page.goto(link, wait_until="networkidle").status == 200
        page.wait_for_timeout(2000)
        assert page.evaluate("document.scripts.length") == 0
        assert not page.locator("form.card button[type=submit]").is_visible()
        page.goto(link + "?lang=en", wait_until="networkidle")
        page.wait_for_timeout(1000)
        page.close()
    assert requested == [("GET", link), ("GET", link + "?lang=en")]  # the documents, nothing else, no POST
    assert cycle_snapshot(stack, year) == before

    # The link still works for the official.
    response = local_http.post(link, data={"outcome": "approve", "comment": ""}, headers={"Origin": stack.base_url})
    assert response.status_code == 200 and "Đã ghi nhận" in response.text
    stack.wait_for_stage_2(run_id, year)
    assert cycle_snapshot(stack, year)["request_status"] == "approved"
