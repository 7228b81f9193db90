"""An SMS's short link in process (`/l/{code}`, the app's own lifespan, both backends): GET and
HEAD answer 303 to the approval link and change nothing (no decision; the link's token still
decides after); an unknown or expired code answers the invalid-link page, as a bad `/a/` token
does, and counts as a failed link (429 after the limit, then for good codes too)."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from approvals.db import utcnow
from approvals.models import Assignment, Decision
from notifications.short_links import CODE_LENGTH, short_link
from service.app import create_app
from tests.api.conftest import live_token, open_request

LIMIT = 3


async def shorten(database, settings, url: str, official: str, expires_at: dt.datetime) -> str:
    async with database.transaction() as session:
        return await short_link(session, url, official, expires_at, secret=settings.link_secret_bytes())


async def approval_link(database, settings) -> tuple[str, str, uuid.UUID, dt.datetime]:
    """A fresh step's approval link: (link, official, assignment id, the link's expiry)."""
    opened = await open_request(database, settings)
    official, assignment_id = next(iter(opened.assignments.items()))
    async with database.sessions() as session:
        expires_at = (await session.get(Assignment, assignment_id)).expires_at
    token = await live_token(database, settings, assignment_id)
    return f"{settings.public_base_url}/a/{token}", official, assignment_id, expires_at


async def state_of(database, assignment_id: uuid.UUID) -> tuple:
    async with database.sessions() as session:
        assignment = await session.get(Assignment, assignment_id)
        decisions = (
            await session.execute(
                select(func.count()).select_from(Decision).where(Decision.request_id == assignment.request_id)
            )
        ).scalar_one()
        return assignment.status, assignment.token_hash, assignment.token_generation, decisions


async def test_get_and_head_redirect_to_the_approval_link_and_change_nothing(client, database, settings):
    target, official, assignment_id, expires_at = await approval_link(database, settings)
    link = await shorten(database, settings, target, official, expires_at)
    assert link.startswith(f"{settings.public_base_url}/l/") and len(link.rsplit("/", 1)[1]) == CODE_LENGTH
    before = await state_of(database, assignment_id)
    assert before[0] == "pending" and before[3] == 0

    for method in ("GET", "HEAD", "GET"):
        answer = await client.request(method, link)
        assert answer.status_code == 303, (method, answer.text)
        assert answer.headers["location"] == target
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["referrer-policy"] == "no-referrer"
    page = await client.get(link, follow_redirects=True)  # the browser's way: the page, shown
    assert page.status_code == 200 and str(page.url) == target
    assert 'name="outcome"' in page.text
    assert await state_of(database, assignment_id) == before  # nothing decided, the token unused

    decided = await client.post(target, data={"outcome": "approve", "comment": ""})  # the target decides
    assert decided.status_code == 200, decided.text
    assert (await state_of(database, assignment_id))[3] == 1


async def test_a_dead_code_answers_the_invalid_link_page(client, database, settings):
    target, official, _, _ = await approval_link(database, settings)
    expired = await shorten(database, settings, target, official, utcnow() - dt.timedelta(seconds=1))
    bad_token = await client.get(f"/a/{'x' * 43}")
    assert bad_token.status_code == 404
    for url in (expired, f"/l/{'x' * CODE_LENGTH}", "/l/short", f"/l/{'x' * CODE_LENGTH}/more", "/l/"):
        answer = await client.get(url)
        assert answer.status_code == 404, url
        assert answer.text == bad_token.text  # the same page: nothing tells a dead code from a bad token
        assert answer.headers["cache-control"] == "no-store"
    english = await client.get(f"/l/{'x' * CODE_LENGTH}?lang=en")
    assert english.status_code == 404 and 'lang="en"' in english.text
    assert 'lang="vi"' in bad_token.text


@pytest.fixture
async def limited_client(settings):
    """The app with a failed-link limit of LIMIT, reached from a client address of its own."""
    app = create_app(settings.model_copy(update={"link_failure_limit": LIMIT}))
    client_address = (f"198.51.100.{uuid.uuid4().int % 250 + 1}", 40000)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=client_address), base_url=settings.public_base_url
        ) as client,
    ):
        yield client


async def test_dead_codes_count_toward_the_failed_link_limit(limited_client, database, settings):
    target, official, _, expires_at = await approval_link(database, settings)
    good = await shorten(database, settings, target, official, expires_at)
    expired = await shorten(database, settings, f"{target}?lang=en", official, utcnow() - dt.timedelta(seconds=1))
    assert (await limited_client.get(good)).status_code == 303  # a live code is no failure
    answers = [
        (await limited_client.get(url)).status_code
        for url in (expired, f"/l/{'x' * CODE_LENGTH}", f"/l/{'y' * CODE_LENGTH}", f"/l/{'z' * CODE_LENGTH}")
    ]
    assert answers == [404] * LIMIT + [429]
    blocked = await limited_client.head(good)  # while blocked, a good code gets the same 429
    assert blocked.status_code == 429 and "retry-after" in blocked.headers
    assert (await limited_client.get(target)).status_code == 429  # and so does its target: one limit
