"""Fixtures of the notification tests (the database and the recording SMTP server come from tests/conftest.py)."""

from __future__ import annotations

import itertools
import uuid

import pytest
from sqlalchemy import delete

from approvals.db import Database
from notifications.models import OutboxMessage
from tests.conftest import DatabaseSandbox
from tests.notifications.helpers import due_keys
from tests.notifications.reply_mail import Mailroom, settings_for
from tests.notifications.smtp_faults import FaultySmtpServer


@pytest.fixture
async def keys(database):
    """Unique idempotency keys for one test (`keys.prefix` starts them all); its rows are deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex}:"
    counter = itertools.count()

    def new_key() -> str:
        return f"{prefix}{next(counter)}"

    new_key.prefix = prefix
    yield new_key
    async with database.transaction() as session:
        await session.execute(delete(OutboxMessage).where(OutboxMessage.idempotency_key.like(f"{prefix}%")))


async def _assert_nothing_due(database) -> None:
    due = await due_keys(database)
    assert not due, f"other messages are due in the shared outbox, a dispatcher here would send them: {due}"


@pytest.fixture
async def nothing_due(database, keys):
    """A dispatcher claims every due message: a test that runs one needs an outbox with nothing else due."""
    await _assert_nothing_due(database)


@pytest.fixture
async def quiet_outbox(database, keys, smtp_server):
    """Dispatcher tests need an outbox with nothing else due, and no scripted SMTP failures left over."""
    await _assert_nothing_due(database)
    with smtp_server.lock:
        smtp_server.replies.clear()
    yield
    with smtp_server.lock:
        smtp_server.replies.clear()


@pytest.fixture(scope="session")
def faulty_smtp_server() -> FaultySmtpServer:
    server = FaultySmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def faulty_smtp(database, keys, faulty_smtp_server) -> FaultySmtpServer:
    """The fault-injecting server, up, with no faults or records left from another test."""
    await _assert_nothing_due(database)
    faulty_smtp_server.up()
    faulty_smtp_server.reset()
    yield faulty_smtp_server
    faulty_smtp_server.up()
    faulty_smtp_server.reset()


@pytest.fixture(scope="module")
async def reply_database(sandbox, tmp_path_factory):
    """A database of the sandbox's backend for one module of reply tests: the dispatcher they run
    sends every due email, which other tests' rows in the shared sandbox would add to."""
    own = DatabaseSandbox(sandbox.backend, tmp_path_factory.mktemp(f"replies-{sandbox.backend}"))
    db = Database(own.url)
    yield db
    await db.dispose()
    own.drop()


@pytest.fixture
def mailroom(reply_database, smtp_server):
    """The reply tests' database, the recording SMTP server (no scripted failure left) and settings."""
    with smtp_server.lock:
        smtp_server.replies.clear()
    return Mailroom(reply_database, smtp_server, settings_for(smtp_server))
