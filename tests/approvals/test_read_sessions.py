"""Database.reads(): the sessions of pages and reports. They read while a writer holds its
transaction open (on SQLite every other transaction begins by taking the write lock), and
they refuse to write."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select, text, update

from approvals.db import WriteInReadSession, make_engine
from approvals.models import Cycle


async def test_a_read_does_not_wait_for_a_writer_holding_its_transaction(database, sandbox):
    period = f"t-{uuid.uuid4().hex[:12]}"
    async with database.transaction() as session:
        session.add(Cycle(kind="problem_escalation", period=period, starts_on=dt.date(2031, 1, 1)))
    writer = make_engine(sandbox.url)
    try:
        with writer.connect() as connection:
            transaction = connection.begin()  # SQLite: BEGIN IMMEDIATE, the file's write lock, held
            connection.execute(text("UPDATE cycle SET period = period WHERE period = :p"), {"p": period})
            async with asyncio.timeout(10):  # the busy timeout is 30 s: a read that waited would show
                async with database.reads() as session:
                    found = (await session.execute(select(func.count()).where(Cycle.period == period))).scalar()
            transaction.rollback()
    finally:
        writer.dispose()
    assert found == 1


async def test_a_read_session_refuses_to_write_and_changes_nothing(database):
    period = f"t-{uuid.uuid4().hex[:12]}"
    async with database.reads() as session:
        session.add(Cycle(kind="problem_escalation", period=period, starts_on=dt.date(2031, 1, 1)))
        with pytest.raises(WriteInReadSession):
            await session.flush()
    async with database.reads() as session:
        with pytest.raises(WriteInReadSession):
            await session.execute(update(Cycle).where(Cycle.period == period).values(period="x"))
        assert (await session.execute(select(func.count()).where(Cycle.period == period))).scalar() == 0
    async with database.transaction() as session:  # a write transaction still writes
        session.add(Cycle(kind="problem_escalation", period=period, starts_on=dt.date(2031, 1, 1)))
    async with database.reads() as session:
        assert (await session.execute(select(func.count()).where(Cycle.period == period))).scalar() == 1
