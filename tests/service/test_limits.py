"""Limits of the web process, on the running stack: failed links from one client earn it
429s (others are not affected), oversized comments get 422 and oversized bodies 413,
with nothing stored."""

from __future__ import annotations

import re
import socket
import subprocess
import time

import httpx
import pytest

from service.limits import WebLimits
from service.prefect_server import free_port, stop_process
from tests.service.helpers import (
    client_from,
    decisions_of,
    open_direct_request,
    request_snapshot,
)
from tests.support import local_http
from tests.support.stack import KEHOACH

pytestmark = pytest.mark.e2e

BAD = "x" * 43


def _limit(stack) -> int:
    return int(stack.env.get("KEHOACH_LINK_FAILURE_LIMIT") or WebLimits.failure_limit)


def test_failed_links_from_one_client_get_429(stack):
    opened = open_direct_request(stack, f"{stack.year(12)}-ratelimit")
    good = opened.link("ppc_vice_chair")
    before = request_snapshot(stack, opened.request_id)
    limit = _limit(stack)

    with client_from("127.0.0.31") as guesser, client_from("127.0.0.32") as neighbour, httpx.Client() as official:
        for n in range(limit):
            method = "GET" if n % 2 else "POST"
            response = guesser.request(
                method,
                f"{stack.base_url}/a/{BAD[:-4]}{n:04d}",
                data={"outcome": "approve"} if method == "POST" else None,
            )
            assert response.status_code == 404, n
        blocked = guesser.get(f"{stack.base_url}/a/{BAD}")
        assert blocked.status_code == 429
        assert 1 <= int(blocked.headers["retry-after"]) <= WebLimits.failure_window + 1
        assert "Tạm dừng truy cập" in blocked.text and "Không có thay đổi nào" in blocked.text
        assert blocked.headers["cache-control"] == "no-store"
        # While blocked, the client's good links get the same 429: the answer says nothing about the token.
        blocked_good = guesser.get(good)
        # The same page but for the seconds it names (a second may pass between the two): every
        # number read as N, since the seconds (say 25) also occur inside others (the page's 255).
        assert blocked_good.status_code == 429 and re.sub(r"\d+", "N", blocked_good.text) == re.sub(
            r"\d+", "N", blocked.text
        )
        assert guesser.post(good, data={"outcome": "approve"}).status_code == 429
        assert guesser.head(good).status_code == 429
        assert guesser.get(f"{stack.base_url}/a/{BAD}?lang=en").text.count("Too many attempts") == 2  # title, h1
        assert guesser.get(f"{stack.base_url}/healthz").status_code == 200  # only links are limited

        # Other clients are not affected: the official's good link works, a neighbour's bad one is a plain 404.
        assert official.get(good).status_code == 200
        assert neighbour.get(f"{stack.base_url}/a/{BAD}").status_code == 404
        assert neighbour.get(good).status_code == 200

    # Successes do not count: limit - 1 failures, many good fetches, then the last allowed failure.
    with client_from("127.0.0.33") as client:
        for _ in range(limit - 1):
            assert client.get(f"{stack.base_url}/a/{BAD}").status_code == 404
        for _ in range(3 * limit):
            assert client.get(good).status_code == 200
        assert client.get(f"{stack.base_url}/a/{BAD}").status_code == 404
        assert client.get(good).status_code == 429
    assert request_snapshot(stack, opened.request_id) == before
    assert "client 127.0.0.31 reached" in stack.log("web")


def test_the_limit_is_configurable_and_slides(stack):
    """A second web process on the same database with a limit of 3 failures per 2 seconds."""
    opened = open_direct_request(stack, f"{stack.year(12)}-ratelimit-config")
    port = free_port()
    env = {
        **stack.env,
        "KEHOACH_WEB_PORT": str(port),
        "KEHOACH_LINK_FAILURE_LIMIT": "3",
        "KEHOACH_LINK_FAILURE_WINDOW": "2",
    }
    base = f"http://127.0.0.1:{port}"
    with open(stack.workdir / "web-limited.log", "ab") as log:
        process = subprocess.Popen(
            [KEHOACH, "web"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=stack.workdir
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if local_http.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        good = f"{base}/a/{opened.tokens['ppc_vice_chair']}"
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(3):
                assert client.get(f"/a/{BAD}").status_code == 404
            blocked = client.get(f"/a/{BAD}")
            assert blocked.status_code == 429 and blocked.headers["retry-after"] in ("1", "2")
            assert client.get(good).status_code == 429
            time.sleep(float(blocked.headers["retry-after"]) + 0.2)  # the window slides: tries again
            assert client.get(good).status_code == 200
            assert client.get(f"/a/{BAD}").status_code == 404
    finally:
        stop_process(process)


def _raw(port: int, head: bytes, body_parts: list[bytes], timeout: float = 10) -> bytes:
    """Send a request by hand (part of a body only) and read what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            for part in body_parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the rest was sent (what a limit does): read its answer
        sock.settimeout(timeout)
        answer = b""
        while b"\r\n\r\n" not in answer:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
        return answer


def test_oversized_comment_and_bodies(stack):
    opened = open_direct_request(stack, f"{stack.year(13)}-sizes")
    link = opened.link("ppc_vice_chair")
    path = link.removeprefix(stack.base_url)
    before = request_snapshot(stack, opened.request_id)

    # A 1 MB comment: 422 with a plain Vietnamese message, the form shown again, nothing stored.
    for comment in ("Nhất trí. " * 100_000, "x" * 1_000_000, "Đề nghị bổ sung kênh phát thanh cơ sở. " * 26_000):
        assert len(comment) >= 1_000_000
        response = local_http.post(link, data={"outcome": "reject", "comment": comment}, timeout=60)
        assert response.status_code == 422, response.text[:500]
        assert "Ý kiến quá dài: tối đa 4.000 ký tự" in response.text
        assert 'name="outcome"' in response.text and len(response.content) < 30_000  # the comment is not echoed
    english = local_http.post(link + "?lang=en", data={"outcome": "reject", "comment": "x" * 1_000_000}, timeout=60)
    assert english.status_code == 422 and "The comment is too long" in english.text
    just_over = local_http.post(link, data={"outcome": "reject", "comment": "ý" * 4001})
    assert just_over.status_code == 422 and "Ý kiến quá dài" in just_over.text
    assert request_snapshot(stack, opened.request_id) == before

    # A 10 MB body with its Content-Length: 413, a Vietnamese page.
    big = local_http.post(
        link,
        content=b"outcome=approve&comment=" + b"x" * 10_000_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=60,
    )
    assert big.status_code == 413 and "Nội dung gửi quá lớn" in big.text
    assert big.headers["cache-control"] == "no-store"
    # ... answered from the headers alone: 1 KB of the 10 MB is sent, and the 413 comes back.
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.web_port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10485760\r\n\r\n"
    ).encode()
    assert _raw(stack.web_port, head, [b"outcome=approve&comment=" + b"x" * 1000]).startswith(b"HTTP/1.1 413")
    # ... and a streamed body without a length is cut off at the limit: 5 MB sent of an endless stream.
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.web_port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    answer = _raw(stack.web_port, head, [b"18\r\noutcome=approve&comment=\r\n"] + [chunk] * 80)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # (a streamed 1 MB comment is still a 422: the body stayed under the limit)
    answer = _raw(stack.web_port, head, [b"18\r\noutcome=approve&comment=\r\n"] + [chunk] * 16 + [b"0\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 422"), answer[:200]

    def endless():
        yield b"outcome=approve&comment="
        for _ in range(160):  # 10 MB
            yield b"x" * 65536

    streamed = local_http.post(
        link, content=endless(), headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=60
    )
    assert streamed.status_code == 413 and "Nội dung gửi quá lớn" in streamed.text
    assert request_snapshot(stack, opened.request_id) == before

    # The link still works, and a comment of exactly 4,000 characters is kept whole.
    comment = ("Ý kiến " * 600)[:4000]
    done = local_http.post(link, data={"outcome": "reject", "comment": comment})
    assert done.status_code == 200 and "Đã ghi nhận" in done.text
    after = request_snapshot(stack, opened.request_id)
    assert after["decisions"] == 1 and after["request_status"] == "rejected"
    assert after["audit_rows"] > before["audit_rows"] and after["outbox_rows"] > before["outbox_rows"]  # counted
    assert decisions_of(stack, opened.request_id) == [("ppc_vice_chair", "reject", comment.strip())]
