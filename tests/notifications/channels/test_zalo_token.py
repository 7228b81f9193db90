"""The Zalo OA token: stored in the database, refreshed by one process at a time under the
row's lock, read again after invalid_grant, and a failure told once. On SQLite and PostgreSQL,
against the fake OAuth server whose refresh tokens really work once."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import update

from approvals.db import Database, make_engine
from notifications.channels.zalo_token import ZaloTokenFailed, ZaloTokenUnavailable, store_tokens
from notifications.models import ZaloToken


async def test_a_fresh_token_is_read_without_asking_zalo(zalo_app):
    await zalo_app.authorise()
    tokens = zalo_app.tokens()
    try:
        assert await tokens.access_token() == zalo_app.access_token
    finally:
        await tokens.aclose()
    assert zalo_app.fake.refreshes() == []


async def test_a_due_token_is_refreshed_and_stored(zalo_app):
    await zalo_app.authorise(expires_in=0)
    tokens = zalo_app.tokens()
    try:
        new = await tokens.access_token()
    finally:
        await tokens.aclose()
    assert new != zalo_app.access_token and new in zalo_app.fake.access_tokens
    [refresh] = zalo_app.fake.refreshes()
    assert refresh == {
        "refresh_token": zalo_app.refresh_token,
        "app_id": zalo_app.app_id,
        "grant_type": "refresh_token",
    }
    row = await zalo_app.row()
    assert row.access_token == new and row.refresh_token != zalo_app.refresh_token
    assert zalo_app.fake.refresh_tokens[zalo_app.refresh_token] == "spent"
    assert row.generation == 2 and row.failed_at is None


async def test_two_refreshers_racing_spend_the_refresh_token_once(zalo_app, sandbox):
    """Two processes' sessions (two engines) find the token due at once: one refreshes under the
    row's lock, the other waits for it and uses the token it stored."""
    await zalo_app.authorise(expires_in=0)
    zalo_app.fake.hang()  # the first refresh waits at Zalo while the second comes for the lock
    first_db, second_db = Database(sandbox.url), Database(sandbox.url)
    first, second = zalo_app.tokens(first_db), zalo_app.tokens(second_db)
    try:
        racing = [asyncio.ensure_future(first.access_token()), asyncio.ensure_future(second.access_token())]
        await asyncio.to_thread(zalo_app.fake.wait_for_requests, 1)
        zalo_app.fake.release()
        tokens = await asyncio.gather(*racing)
    finally:
        zalo_app.fake.release()
        for client in (first, second):
            await client.aclose()
        await first_db.dispose()
        await second_db.dispose()
    assert len(zalo_app.fake.refreshes()) == 1  # the single-use token was offered once
    assert tokens[0] == tokens[1] == (await zalo_app.row()).access_token
    assert tokens[0] in zalo_app.fake.access_tokens and zalo_app.told == []


async def test_after_invalid_grant_the_token_another_process_stored_is_used(zalo_app, sandbox):
    """Another process (one not taking the lock) spent the refresh token a moment before ours
    reached Zalo, and stores its tokens once our lock is released: ours reads them, gives up
    nothing, and tells nobody."""
    await zalo_app.authorise(expires_in=0)
    theirs: dict[str, str] = {}
    writers: list[threading.Thread] = []

    def store_theirs(access: str, refresh: str) -> None:
        engine = make_engine(sandbox.url)
        try:
            with engine.begin() as connection:  # waits for our row lock (PostgreSQL) or write lock (SQLite)
                connection.execute(
                    update(ZaloToken)
                    .where(ZaloToken.app_id == zalo_app.app_id)
                    .values(access_token=access, refresh_token=refresh, generation=ZaloToken.generation + 1)
                )
        finally:
            engine.dispose()

    def other_process_first(refresh_token: str) -> None:
        issued = zalo_app.fake.spend(refresh_token)
        assert issued is not None
        theirs["access"], theirs["refresh"] = issued
        writer = threading.Thread(target=store_theirs, args=issued)
        writer.start()
        writers.append(writer)

    zalo_app.fake.before_refresh = other_process_first
    tokens = zalo_app.tokens(grace=30.0)  # a bound for the other writer, not a wait: it ends when the row changes
    try:
        got = await tokens.access_token()
    finally:
        await tokens.aclose()
        for writer in writers:
            writer.join(timeout=60)
    assert got == theirs["access"]
    assert len(zalo_app.fake.refreshes()) == 1  # ours, answered invalid_grant
    row = await zalo_app.row()
    assert row.refresh_token == theirs["refresh"] and row.failed_at is None and zalo_app.told == []


async def test_a_refused_refresh_is_recorded_and_told_once(zalo_app):
    await zalo_app.authorise(expires_in=0)
    assert zalo_app.fake.spend(zalo_app.refresh_token) is not None  # spent elsewhere; nobody stores it
    first, second = zalo_app.tokens(grace=0.2), zalo_app.tokens(grace=0.2)
    try:
        with pytest.raises(ZaloTokenFailed) as failed:
            await first.access_token()
        assert failed.value.failure is not None and "invalid_grant" in failed.value.failure.detail
        with pytest.raises(ZaloTokenFailed) as again:
            await second.access_token()
        assert again.value.failure is None  # already recorded: not told again
    finally:
        await first.aclose()
        await second.aclose()
    [told] = zalo_app.told
    assert told.app_id == zalo_app.app_id and told.generation == 1
    row = await zalo_app.row()
    assert row.failed_at is not None and "invalid_grant" in (row.failure or "")
    assert len(zalo_app.fake.refreshes()) == 1  # the failed row is not offered to Zalo again

    await zalo_app.authorise()  # a person authorises the OA again: the failure is cleared
    tokens = zalo_app.tokens()
    try:
        assert await tokens.access_token() == zalo_app.access_token
    finally:
        await tokens.aclose()
    assert (await zalo_app.row()).failed_at is None


async def test_zalo_unreachable_is_retryable_and_spends_nothing(zalo_app):
    await zalo_app.authorise(expires_in=0)
    zalo_app.fake.fail_with(502)
    tokens = zalo_app.tokens()
    try:
        with pytest.raises(ZaloTokenUnavailable):
            await tokens.access_token()
        zalo_app.fake.fail_with(None)
        assert await tokens.access_token() in zalo_app.fake.access_tokens
    finally:
        await tokens.aclose()
    assert zalo_app.told == [] and (await zalo_app.row()).generation == 2


async def test_no_token_stored_is_a_failure_a_person_must_fix(zalo_app, database):
    tokens = zalo_app.tokens()
    try:
        with pytest.raises(ZaloTokenFailed, match="authorise the OA"):
            await tokens.access_token()
    finally:
        await tokens.aclose()
    await store_tokens(database, zalo_app.app_id, access_token="at-x", refresh_token="rt-x")
    assert (await zalo_app.row()).generation == 1


async def test_a_token_near_its_end_is_used_while_zalo_cannot_refresh_it(zalo_app):
    await zalo_app.authorise(expires_in=600)  # ten minutes left: within the margin, refreshed first
    zalo_app.fake.fail_with(503)
    tokens = zalo_app.tokens()
    try:
        assert await tokens.access_token() == zalo_app.access_token
    finally:
        await tokens.aclose()
    assert len(zalo_app.fake.refreshes()) == 1 and (await zalo_app.row()).generation == 1
