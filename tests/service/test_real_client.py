"""The failed-link limit sees the real client behind a trusted proxy, and holds across web
processes: two apps (two `kehoach web` processes) on one database count the same failures."""

from __future__ import annotations

import httpx
import pytest

from approvals.config import Settings
from service.app import create_app
from service.limits import real_client, trusted_networks

BAD = "x" * 43
PROXIES = "10.0.0.0/8, 127.0.0.1"


def _scope(peer: str, forwarded: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"type": "http", "client": (peer, 40000), "headers": headers}


def test_the_client_is_read_from_behind_trusted_proxies_only():
    trusted = trusted_networks(PROXIES)
    assert real_client(_scope("10.1.2.3", "203.0.113.7"), trusted) == "203.0.113.7"
    # Two trusted hops: the address the first one saw.
    assert real_client(_scope("127.0.0.1", "203.0.113.7, 10.9.9.9"), trusted) == "203.0.113.7"
    # What the client put in the header itself is before its real address, and is not believed.
    assert real_client(_scope("10.1.2.3", "198.51.100.1, 203.0.113.7"), trusted) == "203.0.113.7"
    # A peer that is not a trusted proxy is the client, whatever it claims.
    assert real_client(_scope("198.51.100.9", "203.0.113.7"), trusted) == "198.51.100.9"
    assert real_client(_scope("10.1.2.3"), trusted) == "10.1.2.3"  # no header: the proxy itself
    assert real_client(_scope("10.1.2.3", "203.0.113.7"), []) == "10.1.2.3"  # nothing trusted: the peer


@pytest.fixture
async def two_web_processes(sandbox, link_secret, tmp_path):
    settings = Settings(
        database_url=sandbox.url,
        link_secret=link_secret,
        data_dir=tmp_path,
        public_base_url="http://kehoach.test",
        event_cycle_deployment="",
        problem_cycle_deployment="",
        link_failure_limit=3,
        link_failure_window=600,
        trusted_proxies=PROXIES,
    )
    apps = [create_app(settings), create_app(settings)]
    contexts = [app.router.lifespan_context(app) for app in apps]
    for context in contexts:
        await context.__aenter__()
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.0.0.2", 5000)), base_url="http://kehoach.test"
        )
        for app in apps
    ]
    yield clients
    for client in clients:
        await client.aclose()
    for context in contexts:
        await context.__aexit__(None, None, None)


async def test_the_limit_holds_across_processes_and_keys_on_the_real_client(two_web_processes):
    first, second = two_web_processes
    guesser = {"X-Forwarded-For": "203.0.113.70"}
    official = {"X-Forwarded-For": "203.0.113.71"}  # behind the same proxy
    assert (await first.get(f"/a/{BAD}", headers=guesser)).status_code == 404
    assert (await second.get(f"/a/{BAD}", headers=guesser)).status_code == 404
    assert (await first.get(f"/s/{BAD}", headers=guesser)).status_code == 404
    # Three failures in all, across the two processes: both now answer 429.
    for client in (first, second):
        blocked = await client.get(f"/a/{BAD}", headers=guesser)
        assert blocked.status_code == 429 and 1 <= int(blocked.headers["retry-after"]) <= 601
    # Everyone else behind the proxy goes on as before.
    assert (await second.get(f"/a/{BAD}", headers=official)).status_code == 404
    assert (await first.get(f"/a/{BAD}", headers={"X-Forwarded-For": "203.0.113.72"})).status_code == 404
