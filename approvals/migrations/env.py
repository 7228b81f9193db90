"""Alembic environment. Runs with a synchronous driver (sqlite3 or psycopg)."""

from alembic import context
from sqlalchemy import pool

# The outbox table belongs to notifications but lives in the same database and
# history; importing its models here (a script, not the approvals package) lets
# autogenerate see it without approvals depending on notifications.
import approvals.models  # noqa: F401
import notifications.models  # noqa: F401
from approvals.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = make_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
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
