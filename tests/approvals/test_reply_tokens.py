"""Reply addresses (issue 23): the token of `duyet+<token>@<reply domain>`, read back from an
address, and the live assignment it opens, on SQLite and PostgreSQL, by the link's own rules."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import uuid

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from approvals.config import PACKAGED_PLAN, Settings
from approvals.errors import InvalidLink
from approvals.models import Assignment
from approvals.plan import load_plan
from approvals.routing import link_views, steps
from approvals.running.chasing import rotate_links
from approvals.statuses import AssignmentStatus
from approvals.tokens import (
    NotAReplyAddress,
    derive_reply_token,
    derive_token,
    hash_reply_token,
    reply_address,
    reply_address_resolver,
    reply_token_of,
    reply_token_well_formed,
)

SECRET = secrets.token_bytes(32)
PLAN = load_plan(PACKAGED_PLAN)
NOW = dt.datetime(2026, 1, 20, 2, 0, tzinfo=dt.UTC)
DOMAIN = "reply.lang-son.example"
TOKEN = derive_reply_token(SECRET, uuid.UUID("5f0c4c52-3d4e-4bb5-9a51-2c1c6f5b2d11"), 1)


def _address(token: str = TOKEN, local_part: str = "duyet", domain: str = DOMAIN) -> str:
    return reply_address(token, local_part=local_part, domain=domain)


def _other_letter(token: str, at: int) -> str:
    """The token with one character replaced by another base32 letter: still well formed."""
    return token[:at] + ("b" if token[at] != "b" else "c") + token[at + 1 :]


# The token and the address ---------------------------------------------------------------------


def test_the_token_is_lowercase_base32_of_160_bits_and_its_address_fits_a_local_part():
    assert len(TOKEN) == 32 and reply_token_well_formed(TOKEN)
    assert set(TOKEN) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert len(base64.b32decode(TOKEN.upper())) == 20
    longest = "d" * 31  # the longest local part the settings accept
    assert len(_address(local_part=longest).split("@")[0]) == 64  # RFC 5321's limit for a local part
    with pytest.raises(ValidationError):
        Settings(reply_local_part="d" * 32)


def test_the_token_is_signed_per_assignment_and_generation_under_its_own_label():
    assignment = uuid.uuid4()
    token = derive_reply_token(SECRET, assignment, 1)
    assert token == derive_reply_token(SECRET, assignment, 1)
    others = {
        derive_reply_token(SECRET, assignment, 2),
        derive_reply_token(SECRET, uuid.uuid4(), 1),
        derive_reply_token(b"another key", assignment, 1),
    }
    assert token not in others and len(others) == 3
    # Not the link token's MAC: a link's token cannot be turned into a reply address, nor back.
    link_mac = base64.urlsafe_b64decode(derive_token(SECRET, assignment, 1) + "=")
    assert base64.b32decode(token.upper()) != link_mac[:20]


def test_an_address_round_trips_to_its_token():
    assert reply_token_of(_address(), local_part="duyet", domain=DOMAIN) == TOKEN
    assert reply_token_of(f"Nông Thị Hạnh <{_address()}>", local_part="duyet", domain=DOMAIN) == TOKEN


@pytest.mark.parametrize(
    "address",
    [
        f"Duyet+{TOKEN.upper()}@Reply.Lang-Son.Example",
        f"DUYET+{TOKEN}@{DOMAIN.upper()}.",
        f"duyet+{TOKEN[:10].upper()}{TOKEN[10:]}@{DOMAIN}",
    ],
    ids=["capitalised", "shouted, with the root's dot", "half upper-case"],  # the token is random: not in an id
)
def test_a_case_folded_address_still_gives_the_token_in_lowercase(address):
    assert reply_token_of(address, local_part="duyet", domain=DOMAIN) == TOKEN
    assert hash_reply_token(TOKEN.upper()) == hash_reply_token(TOKEN) == hashlib.sha256(TOKEN.encode()).hexdigest()


@pytest.mark.parametrize(
    "address",
    [
        pytest.param(f"tuchoi+{TOKEN}@{DOMAIN}", id="another local part"),
        pytest.param(f"duyetx+{TOKEN}@{DOMAIN}", id="a longer local part"),
        pytest.param(f"duyet+{TOKEN}@evil.example", id="another domain"),
        pytest.param(f"duyet+{TOKEN}@{DOMAIN}.evil.example", id="a domain under ours"),
        pytest.param(f"duyet+{TOKEN}@sub.{DOMAIN}", id="a domain above ours"),
        pytest.param(f"duyet@{DOMAIN}", id="no token"),
        pytest.param(f"duyet+@{DOMAIN}", id="an empty token"),
        pytest.param(f"duyet+{TOKEN[:-1]}@{DOMAIN}", id="truncated"),
        pytest.param(f"duyet+{TOKEN}a@{DOMAIN}", id="too long"),
        pytest.param(f"duyet+{TOKEN[:-1]}1@{DOMAIN}", id="not base32"),
        pytest.param(f"duyet+{TOKEN[:16]}+{TOKEN[16:]}@{DOMAIN}", id="a second plus"),
        pytest.param(f"duyet+{TOKEN}", id="no domain"),
        pytest.param("", id="empty"),
    ],
)
def test_any_other_address_is_refused_as_a_dead_link(address):
    with pytest.raises(NotAReplyAddress) as refused:
        reply_token_of(address, local_part="duyet", domain=DOMAIN)
    assert isinstance(refused.value, InvalidLink)  # answered as any dead link (service/errors.py)


def test_with_replies_off_no_address_is_ours_and_none_is_written():
    with pytest.raises(NotAReplyAddress):
        reply_token_of(f"duyet+{TOKEN}@", local_part="duyet", domain="")
    assert reply_address_resolver(SECRET, local_part="duyet", domain="")(f"{uuid.uuid4()}:1") == ""
    assignment = uuid.uuid4()
    on = reply_address_resolver(SECRET, local_part="duyet", domain=DOMAIN)(f"{assignment}:2")
    assert on == _address(derive_reply_token(SECRET, assignment, 2))


@pytest.mark.parametrize("local_part", ["Duyet", "duyet+x", "-duyet", "du yet", ""])
def test_the_settings_refuse_a_local_part_a_reply_address_cannot_start_with(local_part):
    with pytest.raises(ValidationError):
        Settings(reply_local_part=local_part)


def test_the_reply_domain_is_kept_lowercase_and_refused_when_not_a_domain():
    assert Settings(reply_domain="Reply.Lang-Son.Example.").reply_domain == DOMAIN
    assert Settings().reply_domain == ""  # replies are off by default
    with pytest.raises(ValidationError):
        Settings(reply_domain="reply lang-son")


# The assignment a reply token opens --------------------------------------------------------------


async def _open(database, now: dt.datetime = NOW):
    async with database.transaction() as session:
        cycle = await steps.get_or_create_cycle(
            session, kind="annual", period=f"r-{uuid.uuid4().hex[:10]}", starts_on=dt.date(2026, 1, 15)
        )
        opened = await steps.open_request(
            session,
            plan=PLAN,
            secret=SECRET,
            cycle=cycle,
            stage_id="dic_direction",
            waiter_ref=None,
            link_ttl=dt.timedelta(days=30),
            now=now,
        )
    return opened.new_assignments[0].assignment


async def _view(database, token: str, now: dt.datetime = NOW) -> link_views.LinkView:
    async with database.sessions() as session:
        return await link_views.view_reply(session, token, now=now)


async def test_a_reply_token_opens_its_assignment_as_the_link_does_and_only_its_hash_is_kept(database):
    assignment = await _open(database)
    token = derive_reply_token(SECRET, assignment.id, assignment.token_generation)
    by_reply = await _view(database, token)
    async with database.sessions() as session:
        by_link = await link_views.view_link(
            session, derive_token(SECRET, assignment.id, assignment.token_generation), now=NOW
        )
    assert type(by_reply) is type(by_link) is link_views.LinkView
    assert by_reply.assignment.id == by_link.assignment.id == assignment.id
    assert by_reply.request.id == by_link.request.id and by_reply.cycle.id == by_link.cycle.id
    assert (await _view(database, token.upper())).assignment.id == assignment.id  # a case-folded address
    async with database.sessions() as session:
        row = (await session.execute(select(Assignment.__table__).where(Assignment.id == assignment.id))).one()
    assert row.reply_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert not any(token in str(value).lower() for value in row)


async def test_a_tampered_truncated_foreign_or_link_token_opens_nothing(database):
    assignment = await _open(database)
    token = derive_reply_token(SECRET, assignment.id, assignment.token_generation)
    for dead in (
        _other_letter(token, 0),
        _other_letter(token, 31),
        token[:-1],
        token + "a",
        derive_reply_token(b"another key", assignment.id, assignment.token_generation),
        derive_reply_token(SECRET, assignment.id, assignment.token_generation + 1),
        derive_token(SECRET, assignment.id, assignment.token_generation),  # the link's token is no reply token
        "",
    ):
        with pytest.raises(InvalidLink):
            await _view(database, dead)
    assert (await _view(database, token)).assignment.id == assignment.id  # the genuine one still does


async def test_a_reply_token_dies_with_its_link_expired_or_no_longer_pending(database):
    assignment = await _open(database)
    token = derive_reply_token(SECRET, assignment.id, assignment.token_generation)
    with pytest.raises(InvalidLink):
        await _view(database, token, now=assignment.expires_at)
    assert (await _view(database, token, now=assignment.expires_at - dt.timedelta(seconds=1))).assignment
    async with database.transaction() as session:
        await session.execute(
            update(Assignment).where(Assignment.id == assignment.id).values(status=AssignmentStatus.revoked.value)
        )
    with pytest.raises(InvalidLink):
        await _view(database, token)


async def test_a_new_generation_kills_the_old_reply_token_and_issues_a_new_one(database):
    assignment = await _open(database)
    old = derive_reply_token(SECRET, assignment.id, assignment.token_generation)
    async with database.transaction() as session:
        request = await steps.lock_request(session, assignment.request_id)
        [reminded] = await rotate_links(session, plan=PLAN, secret=SECRET, request=request, now=NOW)
    assert reminded.assignment.id == assignment.id and reminded.assignment.token_generation == 2
    with pytest.raises(InvalidLink):
        await _view(database, old)
    new = derive_reply_token(SECRET, assignment.id, 2)
    assert (await _view(database, new)).assignment.id == assignment.id


async def test_a_reassignment_kills_the_reply_token_of_the_official_it_was_taken_from(database):
    assignment = await _open(database)
    old = derive_reply_token(SECRET, assignment.id, assignment.token_generation)
    to = "dost_director"
    assert assignment.official_id != to
    async with database.transaction() as session:
        moved = await steps.reassign(
            session,
            plan=PLAN,
            secret=SECRET,
            assignment_id=assignment.id,
            to_official=to,
            by="coordinator:test",
            now=NOW,
            link_ttl=dt.timedelta(days=30),
        )
    with pytest.raises(InvalidLink):
        await _view(database, old)
    fresh = derive_reply_token(SECRET, moved.assignment.id, moved.assignment.token_generation)
    assert (await _view(database, fresh)).assignment.official_id == to
