"""Tokens are bound to one assignment: another approver's token aimed at a different
request, paths that mix two requests, 10 KB tokens, tokens never issued, closed and used
tokens all get the one invalid-link answer and change nothing; and no token, good or bad,
reaches the web process's log."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from approvals.models import Assignment
from approvals.tokens import derive_token
from tests.service.helpers import (
    client_from,
    decisions_of,
    open_direct_request,
    request_snapshot,
)
from tests.support import local_http

pytestmark = pytest.mark.e2e


def _answers(stack, paths: list[str]) -> set[tuple[int, str]]:
    """Each path by GET, HEAD and POST, each from its own loopback address (so that the
    failed-link limit, tested elsewhere, stays out of the way)."""
    answers = set()
    for n, path in enumerate(paths):
        with client_from(f"127.0.1.{n + 1}", base_url=stack.base_url) as client:
            for method in ("GET", "POST"):
                response = client.request(
                    method, path, data={"outcome": "approve", "comment": "ok"} if method == "POST" else None
                )
                answers.add((response.status_code, response.text))
            head = client.head(path)
            assert head.status_code == 404 and head.content == b"", path
    return answers


def test_tokens_are_bound_to_their_assignment(stack):
    secret = stack.env["KEHOACH_LINK_SECRET"].encode()
    first = open_direct_request(stack, f"{stack.year(15)}-first")
    second = open_direct_request(stack, f"{stack.year(15)}-second", escalated=True)  # the PPC chair is asked too
    mine = first.tokens["ppc_vice_chair"]  # the attacker's own live token, on the first request
    theirs = second.tokens["ppc_chair"]  # another approver's token, on a different request
    before = {r: request_snapshot(stack, r) for r in (first.request_id, second.request_id)}

    # The other approver's token opens only their own assignment: their name, their request.
    own_page = local_http.get(second.link("ppc_chair")).text
    assert "Nguyễn Cảnh Toàn" in own_page and second.period in own_page and first.period not in own_page

    ten_kb = (theirs * 240)[:10_240]
    paths = [
        f"/a/{theirs}/{first.request_id}",
        f"/a/{first.request_id}/{theirs}",
        f"/a/{mine}/{theirs}",
        f"/a/{theirs}%2F{mine}",
        f"/a/{first.request_id}",
        f"/a/{theirs}{mine}",
        f"/a/{mine}/",
        f"/a/{ten_kb}",
        f"/a/{theirs[:-1]}{'A' if theirs[-1] != 'A' else 'B'}",
        f"/a/{theirs[:-5]}",
        "/a/",
        f"/a/{'x' * 43}",
        # tokens that were never issued: another generation of a real assignment, another key
        f"/a/{derive_token(secret, uuid.uuid4(), 1)}",
        f"/a/{derive_token(b'another key', uuid.uuid4(), 1)}",
    ]
    answers = _answers(stack, paths)
    assert len(answers) == 1, "every bad link must get the same status and page"
    status, page = answers.pop()
    assert status == 404 and "Liên kết không còn hiệu lực" in page
    assert {r: request_snapshot(stack, r) for r in (first.request_id, second.request_id)} == before

    # Identifiers of the first request in the query or the form do not steer a token: the second
    # request's token decides the second request, as its own official, and nothing else.
    response = local_http.post(
        f"{second.link('ppc_chair')}?request_id={first.request_id}",
        data={
            "outcome": "approve",
            "comment": "",
            "request_id": str(first.request_id),
            "token": mine,
            "official_id": "ppc_vice_chair",
            "assignment_id": str(uuid.uuid4()),
        },
    )
    assert response.status_code == 200 and "Đã ghi nhận" in response.text
    assert decisions_of(stack, second.request_id) == [("ppc_chair", "approve", "")]
    assert request_snapshot(stack, first.request_id) == before[first.request_id]

    # The second request is settled (policy any): its other approver's token and the used one are now
    # bad links like any other, and the first request still works for its own approver.
    settled = request_snapshot(stack, second.request_id)
    assert _answers(stack, [f"/a/{second.tokens['ppc_vice_chair']}", f"/a/{theirs}"]) == {(404, page)}
    assert request_snapshot(stack, second.request_id) == settled
    assert local_http.get(first.link("ppc_vice_chair")).status_code == 200


def test_no_token_reaches_the_web_log(stack):
    """Runs after the tests above (same module, same stack): every token this stack issued
    or was sent, good or bad, is absent from the web process's log."""
    secret = stack.env["KEHOACH_LINK_SECRET"].encode()
    probe = open_direct_request(stack, f"{stack.year(15)}-log")
    token = probe.tokens["ppc_vice_chair"]
    with client_from("127.0.2.1", base_url=stack.base_url) as client:
        client.get(f"/a/{token}?lang=en")
        client.get(f"/a/{token}/{token}")
        client.get(f"/a/{(token * 240)[:10_240]}")
        client.post(f"/a/{token}x", data={"outcome": "approve"})
    log = stack.log("web")
    assert "/a/[redacted]" in log
    with stack.reading() as conn:
        issued = [derive_token(secret, a.id, a.token_generation) for a in conn.execute(select(Assignment))]
    assert token in issued and len(issued) > 2
    found = [t for t in issued if t in log]
    assert found == [], f"raw tokens found in the web log: {len(found)}"
    assert "/a/" not in log.replace("/a/[redacted]", "")
