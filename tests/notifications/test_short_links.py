"""Short links for SMS (`notifications.short_links`), on both backends: the same target and
official give the same code and one row; neither the code nor the target is in the database;
a row altered in the database, another official's row or an expired row opens nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets

import pytest
from sqlalchemy import select, text, update

from approvals.db import utcnow
from notifications import short_links
from notifications.models import ShortLink
from notifications.short_links import (
    ALPHABET,
    CODE_LENGTH,
    NotAShortLinkTarget,
    UnknownShortLink,
    short_link,
    short_link_target,
)

SECRET = b"a link secret of the tests, long enough for HMAC-SHA-256"


def target() -> str:
    return f"https://kehoach.ubnd.langson.gov.vn/a/{secrets.token_urlsafe(32)}"


def code_of(link: str) -> str:
    return link.rsplit("/l/", 1)[1]


async def make(database, url: str, official: str = "pct_ubnd", *, days: float = 30) -> str:
    async with database.transaction() as session:
        return await short_link(session, url, official, utcnow() + dt.timedelta(days=days), secret=SECRET)


async def follow(database, code: str) -> str:
    async with database.reads() as session:
        return await short_link_target(session, code, secret=SECRET, now=utcnow())


async def test_the_same_target_and_official_give_the_same_code_and_one_row(database):
    url = target()
    first, again = await make(database, url), await make(database, url)
    assert first == again
    assert first.startswith("https://kehoach.ubnd.langson.gov.vn/l/")
    code = code_of(first)
    assert len(code) == CODE_LENGTH and set(code) <= set(ALPHABET)
    assert await follow(database, code) == url
    async with database.sessions() as session:
        rows = (
            await session.execute(select(ShortLink).where(ShortLink.code_hash == short_links.code_hash(SECRET, code)))
        ).all()
    assert len(rows) == 1
    # Another official, or another target, gets another code.
    assert await make(database, url, "ct_ubnd") != first
    assert await make(database, target()) != first


async def test_two_dispatchers_at_once_make_one_link(database):
    """Two transactions shorten the same link at once (two dispatchers sending the same SMS):
    both get the same link, and one row holds it."""
    url = target()
    first, second = await asyncio.gather(make(database, url), make(database, url))
    assert first == second
    assert await follow(database, code_of(first)) == url
    async with database.sessions() as session:
        count = (
            await session.execute(
                select(ShortLink.code_hash).where(ShortLink.code_hash == short_links.code_hash(SECRET, code_of(first)))
            )
        ).all()
    assert len(count) == 1


async def test_neither_the_code_nor_the_target_is_in_the_database(database):
    url = target()
    link = await make(database, url, "gd_sotttt")
    code, token = code_of(link), url.rsplit("/", 1)[1]
    async with database.sessions() as session:
        rows = (await session.execute(text("SELECT * FROM short_link"))).all()
    stored = repr(rows)
    assert rows and "gd_sotttt" in stored  # the rows are there, and read back whole
    assert code not in stored and token not in stored and "kehoach.ubnd" not in stored
    for row in rows:  # in any encoding the columns could hold it
        for value in row:
            raw = value if isinstance(value, bytes) else str(value).encode()
            assert code.encode() not in raw and token.encode() not in raw


async def test_an_altered_row_opens_nothing(database):
    url, other = target(), target()
    code, other_code = code_of(await make(database, url)), code_of(await make(database, other, "ct_ubnd"))
    async with database.transaction() as session:  # another row's sealed target moved onto this one
        sealed = (
            await session.execute(
                select(ShortLink.sealed_target).where(ShortLink.code_hash == short_links.code_hash(SECRET, other_code))
            )
        ).scalar_one()
        await session.execute(
            update(ShortLink)
            .where(ShortLink.code_hash == short_links.code_hash(SECRET, code))
            .values(sealed_target=sealed)
        )
    with pytest.raises(UnknownShortLink):
        await follow(database, code)
    assert await follow(database, other_code) == other
    async with database.transaction() as session:  # the row said to be another official's
        await session.execute(
            update(ShortLink)
            .where(ShortLink.code_hash == short_links.code_hash(SECRET, other_code))
            .values(official_id="pct_ubnd")
        )
    with pytest.raises(UnknownShortLink):
        await follow(database, other_code)


async def test_unknown_malformed_and_expired_codes_open_nothing(database):
    expired = code_of(await make(database, target(), days=-1))
    live = code_of(await make(database, target()))
    for code in (expired, "x" * CODE_LENGTH, live[:-1], live + "x", live.replace(live[0], "0"), ""):
        with pytest.raises(UnknownShortLink):
            await follow(database, code)


async def test_only_http_links_are_shortened(database):
    for bad in ("/a/relative", "javascript:alert(1)", "https:///a/x"):
        with pytest.raises(NotAShortLinkTarget):
            await make(database, bad)
