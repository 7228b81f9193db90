"""The web layer's pieces on their own: the failure window, client keys, the body limit,
the failed-link limit and log redaction (in process, no stack)."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

from approvals.config import Settings
from service.limits import BodyLimit, FailureWindow, LinkFailureLimit, WebLimits, client_key
from service.security import RedactTokens, SecurityHeaders

TOKEN = "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failure_window_slides():
    clock = Clock()
    window = FailureWindow(3, 10, clock=clock)
    for _ in range(2):  # failures at t = 0 and t = 2
        window.record("a")
        clock.now += 2
    assert window.retry_after("a") is None
    window.record("a")  # t = 4: the third
    assert window.retry_after("a") == pytest.approx(6)  # the first failure leaves the window in 6 s
    assert window.retry_after("b") is None  # other clients are not affected
    clock.now += 6.01
    assert window.retry_after("a") is None  # one failure left the window: one more try
    window.record("a")
    assert window.retry_after("a") == pytest.approx(1.99)  # blocked until the t = 2 failure leaves
    clock.now += 20
    assert window.retry_after("a") is None and len(window) == 0  # forgotten entirely


def test_failure_window_is_bounded_and_can_be_off():
    clock = Clock()
    window = FailureWindow(2, 60, max_clients=100, clock=clock)
    for n in range(1000):
        window.record(f"10.0.{n // 256}.{n % 256}")
    assert len(window) <= 100
    off = FailureWindow(0, 60, clock=clock)
    for _ in range(100):
        off.record("a")
    assert off.retry_after("a") is None


def test_client_keys():
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    # One IPv6 client owns a /64: rotating addresses inside it does not escape the limit.
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key(None) == "?"


def test_limits_from_environment(monkeypatch):
    monkeypatch.setenv("KEHOACH_LINK_FAILURE_LIMIT", "7")
    monkeypatch.setenv("KEHOACH_LINK_FAILURE_WINDOW", "2.5")
    monkeypatch.setenv("KEHOACH_MAX_BODY_BYTES", "1000")
    limits = WebLimits.from_settings(Settings())
    assert (limits.failure_limit, limits.failure_window, limits.max_body_bytes) == (7, 2.5, 1000)
    monkeypatch.delenv("KEHOACH_LINK_FAILURE_LIMIT")
    assert WebLimits.from_settings(Settings()).failure_limit == WebLimits.failure_limit


def _app(seen: dict) -> Starlette:
    async def echo(request: Request):
        body = b""
        async for chunk in request.stream():
            body += chunk
        seen["read"] = len(body)
        return PlainTextResponse(f"read {len(body)}")

    async def link(request: Request):
        seen["calls"] = seen.get("calls", 0) + 1
        good = request.path_params["token"] == "good"
        return HTMLResponse("ok" if good else "invalid", status_code=200 if good else 404)

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/a/{token}", link, methods=["GET", "POST"])])
    return app


def _client(app, limit_bytes=1000, failures=3, window=60.0, host="203.0.113.7"):
    wrapped = SecurityHeaders(LinkFailureLimit(BodyLimit(app, max_bytes=limit_bytes), limit=failures, window=window))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped, client=(host, 5555)), base_url="http://test")


async def test_body_limit_answers_before_reading():
    seen: dict = {}
    async with _client(_app(seen)) as client:
        small = await client.post("/echo", content=b"x" * 1000)
        assert small.status_code == 200 and seen["read"] == 1000
        seen.clear()
        big = await client.post("/echo", content=b"x" * 10_000_000)
        assert big.status_code == 413
        assert "read" not in seen  # refused on Content-Length: the application never ran
        assert "Nội dung gửi quá lớn" in big.text
        assert big.headers["content-type"].startswith("text/html")
        assert big.headers["x-content-type-options"] == "nosniff"
        english = await client.post("/echo?lang=en", content=b"x" * 2000)
        assert english.status_code == 413 and "Request too large" in english.text


async def test_body_limit_cuts_off_a_streamed_body():
    seen: dict = {}
    sent = 0

    async def stream():
        nonlocal sent
        for _ in range(10_000):  # 10 MB in 1 KB chunks, no Content-Length
            sent += 1024
            yield b"y" * 1024

    async with _client(_app(seen), limit_bytes=4096) as client:
        response = await client.post("/echo", content=stream())
    assert response.status_code == 413 and "Nội dung gửi quá lớn" in response.text
    assert "read" not in seen  # the application never got the whole body


async def test_failed_links_earn_429_and_successes_do_not_count():
    seen: dict = {}
    async with _client(_app(seen), failures=3) as client:
        for _ in range(2):
            assert (await client.get("/a/bad")).status_code == 404
        for _ in range(20):
            assert (await client.get("/a/good")).status_code == 200
        assert (await client.post("/a/bad")).status_code == 404
        calls = seen["calls"]
        blocked = await client.get("/a/good")
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        assert "Tạm dừng truy cập" in blocked.text
        assert (await client.post("/a/bad")).status_code == 429
        assert seen["calls"] == calls  # answered before the application (and its database) ran
        assert (await client.get("/echo")).status_code != 429  # only links are limited
    # Each ASGITransport wraps its own middleware stack; the same stack serves two clients here:
    shared_seen: dict = {}
    wrapped = SecurityHeaders(LinkFailureLimit(BodyLimit(_app(shared_seen), max_bytes=1000), limit=2, window=60))
    first = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=wrapped, client=("203.0.113.9", 1)), base_url="http://t"
    )
    second = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=wrapped, client=("198.51.100.9", 1)), base_url="http://t"
    )
    async with first, second:
        for _ in range(2):
            await first.get("/a/bad")
        assert (await first.get("/a/good")).status_code == 429
        assert (await second.get("/a/good")).status_code == 200
        assert (await second.get("/a/bad")).status_code == 404


def test_redaction_removes_everything_after_the_link_prefix():
    token = TOKEN
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", f"/a/{token}/extra/{token}?lang=en&t={token}", "1.1", 200),
        None,
    )
    RedactTokens().filter(record)
    assert token not in record.getMessage() and "/a/[redacted]" in record.getMessage()
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, f"failed on /a/{token}", None, None)
    RedactTokens().filter(record)
    assert token not in record.getMessage()


def test_redaction_removes_a_short_links_code():
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '"%s %s"', ("HEAD", "/l/AbCdEfGhJk23?lang=en"), None
    )
    RedactTokens().filter(record)
    assert record.getMessage() == '"HEAD /l/[redacted]"'
