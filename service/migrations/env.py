"""Alembic environment. Runs with a synchronous driver (sqlite3 or psycopg)."""

from alembic import context
from sqlalchemy import pool

# Every package's tables live in one database and one history, so the environment
# imports every package's models: it sits at the top, in service/, where
# `kehoach db upgrade` lives, and approvals/ never depends on notifications/.
import approvals.models
import approvals.report_models  # noqa: F401
import notifications.models  # noqa: F401
from approvals.db import Base, make_engine
from approvals.errors import KehoachError

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        url = config.get_main_option("sqlalchemy.url")
        if url is None:  # service.migrate.alembic_config always sets it
            raise KehoachError("the Alembic configuration names no sqlalchemy.url")
        engine = make_engine(url, poolclass=pool.NullPool)
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
