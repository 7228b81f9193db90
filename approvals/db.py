"""The shared database base, engines and sessions.

The boundary that starts a unit of work (a request handler, a Prefect task, the
dispatcher) owns the transaction with `async with session.begin()`; the code
below it only adds and flushes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeAlias, TypeVar, cast

from sqlalchemy import ColumnElement, DateTime, MetaData, Table, create_engine, event, select, update
from sqlalchemy.engine import Connection, CursorResult, Dialect, Engine, Result, Row, make_url
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session, UOWTransaction
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql import Executable, FromClause
from sqlalchemy.sql.elements import SQLCoreOperations
from sqlalchemy.types import TypeDecorator

from approvals.errors import InvalidInput, KehoachError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


AnyRow: TypeAlias = Row[*tuple[Any, ...]]
"""A row of columns read by a Core statement (each column's type unknown to the checker)."""
AnyCursorResult: TypeAlias = CursorResult[*tuple[Any, ...]]
Params: TypeAlias = Mapping[str, Any] | Sequence[Mapping[str, Any]]
"""A statement's bound parameters: one row's, or several rows' (an executemany)."""


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Stores aware datetimes as UTC and always gives back aware UTC datetimes (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise KehoachError("naive datetime given to the database; use utcnow()")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_Model = TypeVar("_Model", bound=Base)


async def row_of(session: AsyncSession, model: type[_Model], key: Any, *, populate_existing: bool = False) -> _Model:
    """The row a foreign key names (a request's cycle, an assignment's request): there is one,
    the database's constraint sees to it."""
    row = await session.get(model, key, populate_existing=populate_existing)
    assert row is not None, f"no {model.__name__} {key}, which a foreign key names"
    return row


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def table_of(table: FromClause) -> Table:
    """A mapped class's `__table__` (typed `FromClause` by SQLAlchemy) as the `Table` it is here:
    every model of the project is mapped to one table."""
    assert isinstance(table, Table), f"{table!r} is not a table"
    return table


def dialect_name(session: AsyncSession | Session) -> str:
    """The name of the database the session talks to ('postgresql' or 'sqlite')."""
    bind = session.bind
    assert bind is not None, "the session is bound to no engine (Database makes every session bound)"
    return bind.dialect.name


def rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """The rows an UPDATE or DELETE matched. `Session.execute` is typed as giving a `Result`;
    for a DML statement it is the `CursorResult` that carries the count."""
    return cast(AnyCursorResult, result).rowcount


def sync_url(url: str) -> str:
    """The URL for a synchronous driver (Alembic, tests): sqlite3 or psycopg."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise InvalidInput(f"unsupported database {backend!r}: use sqlite or postgresql")


def async_url(url: str) -> str:
    parsed = make_url(sync_url(url))
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    return parsed.render_as_string(hide_password=False)  # psycopg 3 is sync and async


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


READ_ONLY = "kehoach_read_only"  # a session execution option: see Database.reads()


class ReadOnlySession(Session):
    """The sessions of Database.reads(): any write is refused before it reaches the database."""


class WriteInReadSession(KehoachError):
    pass


@event.listens_for(ReadOnlySession, "before_flush")
def _refuse_flush(session: Session, _context: UOWTransaction, _instances: object) -> None:
    if session.new or session.dirty or session.deleted:
        raise WriteInReadSession("a read session (Database.reads) may not write: use Database.transaction()")


@event.listens_for(ReadOnlySession, "do_orm_execute")
def _refuse_writes(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise WriteInReadSession("a read session (Database.reads) may not write: use Database.transaction()")


class _SqliteConnection(Protocol):
    """What the pragmas use of a DB-API connection of sqlite3 or aiosqlite."""

    isolation_level: str | None

    def cursor(self) -> DBAPICursor: ...


def _sqlite_pragmas(engine: Engine) -> None:
    """Several processes share the embedded SQLite file: WAL, a busy timeout, and
    write transactions that take the lock when they begin (BEGIN IMMEDIATE), so a
    read-then-write never fails halfway with 'database is locked'. A session that only
    reads (Database.reads) begins deferred: in WAL mode readers never wait for the lock."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: _SqliteConnection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN" if connection.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    engine = create_engine(sync_url(url), pool_pre_ping=True, **kwargs)
    if is_sqlite(url):
        _sqlite_pragmas(engine)
    return engine


def make_async_engine(url: str) -> AsyncEngine:
    kwargs: dict[str, int] = {} if is_sqlite(url) else {"pool_size": 10, "max_overflow": 20}
    engine = create_async_engine(async_url(url), pool_pre_ping=True, **kwargs)
    if is_sqlite(url):
        _sqlite_pragmas(engine.sync_engine)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class Database:
    """An async engine and its session factory, made once per process."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_async_engine(url)
        self.sessions = make_sessionmaker(self.engine)
        self._readers = async_sessionmaker(
            self.engine,
            expire_on_commit=False,
            autoflush=False,
            sync_session_class=ReadOnlySession,
            execution_options={READ_ONLY: True},
        )
        # For read_once: on PostgreSQL a few connections of their own, in autocommit and taken
        # without the pool's ping (a round trip each); SQLite's file needs neither.
        self._single_reads = (
            self.engine.execution_options(**{READ_ONLY: True})
            if is_sqlite(url)
            else create_async_engine(async_url(url), pool_size=2, max_overflow=8, isolation_level="AUTOCOMMIT")
        )

    @asynccontextmanager
    async def reads(self) -> AsyncIterator[AsyncSession]:
        """A session for pages and reports that only read. On SQLite its transaction begins
        deferred, so concurrent pages read side by side (WAL) instead of queueing for the
        write lock that `sessions()` and `transaction()` take when they begin. A write in it
        (a flush, an INSERT/UPDATE/DELETE statement) raises before it reaches the database."""
        async with self._readers() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: committed on success, rolled back on any error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def read_once(self, statement: Executable, parameters: Mapping[str, Any] | None = None) -> list[AnyRow]:
        """The rows of one read statement, outside any transaction: one round trip, for what a
        request reads before its own work (the failed-link limit's count). A connection the
        database dropped meanwhile (a restart) is replaced and the statement sent once more."""
        for attempt in (1, 2):
            try:
                async with self._single_reads.connect() as connection:
                    return list((await connection.execute(statement, parameters)).all())
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._single_reads is not self.engine:
            await self._single_reads.dispose()


async def core(session: AsyncSession, statement: Executable, parameters: Params | None = None) -> AnyCursorResult:
    """Run a Core statement built once (an insert, an update, a select of columns) on the session's
    connection, in its transaction: it skips the ORM session's execution machinery, about a
    third of what such a statement costs on the client. Nothing in the session is flushed
    first or synchronised after: for rows the caller does not hold as objects."""
    return await (await session.connection()).execute(statement, parameters)


async def claim(
    session: AsyncSession,
    table: FromClause,
    *,
    due: ColumnElement[bool],
    order_by: SQLCoreOperations[Any],
    limit: int,
    values: Mapping[str, Any],
    returning: Sequence[ColumnElement[Any]],
) -> Sequence[AnyRow]:
    """Take up to `limit` due rows of a queue table in one statement, setting `values` (a lease)
    on them, and return `returning` of each. On PostgreSQL the rows are picked once (a
    materialised CTE: an IN (subquery) may be run again per row and take more than the limit),
    skipping those another process holds (FOR UPDATE SKIP LOCKED); SQLite's writers take turns
    (BEGIN IMMEDIATE), so there is nothing to skip. The outbox and the wake queue use it."""
    query = select(table.c.id).where(due).order_by(order_by).limit(limit)
    if dialect_name(session) == "postgresql":
        picked = query.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        chosen = table.c.id == picked.c.id
    else:
        chosen = table.c.id.in_(query.scalar_subquery())
    statement = update(table_of(table)).where(chosen, due).values(**values).returning(*returning)
    return (await session.execute(statement)).all()
