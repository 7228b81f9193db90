"""Keeping the service, in process (the fast tier; tests/test_cli.py runs the installed script):
`kehoach db upgrade` says the revision it left, `audit verify` passes an intact chain and names
the first row edited or deleted, and `account add` prints a new account's token once, or refuses
an unknown role and adds nothing. Each on the test's own database of each backend."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, text

from approvals.config import PACKAGED_PLAN
from approvals.models import ApiAccount
from approvals.people.accounts import authenticate
from approvals.plan import load_plan
from approvals.routing import steps
from service.migrate import current
from tests.service.conftest import in_database


def test_db_upgrade_says_the_revision_it_left_and_changes_nothing_the_second_time(kehoach, private_database):
    head = current(private_database.url)
    for _ in range(2):
        code, out = kehoach("db", "upgrade")
        assert (code, out) == (0, f"Database at revision {head}\n")
    assert current(private_database.url) == head


async def _three_steps(session) -> None:
    plan = load_plan(PACKAGED_PLAN)
    for year in ("2040", "2041", "2042"):
        cycle = await steps.get_or_create_cycle(session, kind="annual", period=year, starts_on=dt.date(2040, 1, 15))
        await steps.open_request(
            session,
            plan=plan,
            secret=b"k" * 32,
            cycle=cycle,
            stage_id="dic_direction",
            waiter_ref=None,
            link_ttl=dt.timedelta(days=30),
            now=dt.datetime.now(dt.UTC),
        )


def test_audit_verify_passes_then_names_the_first_edited_or_deleted_row(kehoach, private_database):
    in_database(private_database.url, _three_steps)
    code, out = kehoach("audit", "verify")
    assert (code, out) == (0, "audit log OK: 3 rows verified\n")

    async def ids(session):
        return list((await session.execute(text("SELECT id FROM audit_event ORDER BY id"))).scalars())

    _, second, third = in_database(private_database.url, ids)

    async def edit(session):
        await session.execute(text("UPDATE audit_event SET actor = 'someone else' WHERE id = :id"), {"id": second})

    in_database(private_database.url, edit)
    code, out = kehoach("audit", "verify")
    assert code == 1 and f"audit log BROKEN at row {second}" in out and "edited" in out and "(1 rows" in out, out

    async def delete(session):
        await session.execute(text("UPDATE audit_event SET actor = 'system' WHERE id = :id"), {"id": second})
        await session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": second})

    in_database(private_database.url, delete)
    code, out = kehoach("audit", "verify")
    assert code == 1 and f"audit log BROKEN at row {third}" in out and "deleted" in out, out


def test_account_add_prints_its_token_once_and_refuses_an_unknown_role(kehoach, private_database):
    code, out = kehoach("account", "add", "lan.vt", "--role", "viewer")
    assert code == 0, out
    token = out.strip()

    async def who(session):
        account = await authenticate(session, token)
        return (account.name, account.role) if account else None

    assert in_database(private_database.url, who) == ("lan.vt", "viewer")  # the printed token opens it

    async def accounts(session):
        return (await session.execute(select(func.count()).select_from(ApiAccount))).scalar_one()

    code, out = kehoach("account", "add", "minh.nq", "--role", "director")
    assert code == 2 and "unknown role 'director' (use coordinator or viewer)" in out, out
    assert in_database(private_database.url, accounts) == 1  # nothing added
