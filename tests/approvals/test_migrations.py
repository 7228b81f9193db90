"""The schema the migrations build is the schema the models declare, on each backend: a column
added to a model without its migration (or the other way round) fails here, not in production."""

from __future__ import annotations

import datetime as dt
import uuid

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

import approvals.report_models  # noqa: F401  (its tables too)
import notifications.models  # noqa: F401  (its tables are in the metadata the migrations build)
from approvals.models import Base
from service.migrate import alembic_config, upgrade
from tests.conftest import DatabaseSandbox

NOW = dt.datetime(2026, 12, 6, 22, 0, tzinfo=dt.UTC)


def test_the_migrations_build_the_models_schema(sandbox):
    with sandbox.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_the_reply_address_revisions_go_down_and_up_again(sandbox, tmp_path):
    """0019 (assignment.reply_token_hash) and 0020 (outbox_message.reply_to), on a database of
    their own: down to 0018 and up again, an outbox row written at 0018 kept (its Reply-To none)."""
    own = DatabaseSandbox(sandbox.backend, tmp_path)
    try:
        columns = {"assignment": "reply_token_hash", "outbox_message": "reply_to"}

        def present() -> dict[str, bool]:
            inspector = inspect(own.engine)
            found = {
                table: column in {c["name"] for c in inspector.get_columns(table)} for table, column in columns.items()
            }
            indexes = {i["name"]: i["unique"] for i in inspector.get_indexes("assignment")}
            assert indexes.get("ix_assignment_reply_token_hash") == (True if found["assignment"] else None)
            return found

        assert present() == {"assignment": True, "outbox_message": True}
        command.downgrade(alembic_config(own.url), "0018")
        own.engine.dispose()
        assert present() == {"assignment": False, "outbox_message": False}
        with own.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO outbox_message (id, idempotency_key, message_id, kind, recipients, subject, text_body,"
                    " html_body, attachments, status, attempts, next_attempt_at, created_at) VALUES (:id, 'before',"
                    " '<before@kehoach.test>', 'approval_request', '[]', 's', 't', 'h', '[]', 'sent', 1, :at, :at)"
                ),
                {"id": uuid.uuid4().hex if own.backend == "sqlite" else str(uuid.uuid4()), "at": NOW},
            )
        upgrade(own.url)
        own.engine.dispose()
        assert present() == {"assignment": True, "outbox_message": True}
        with own.engine.connect() as connection:
            assert connection.execute(
                text("SELECT reply_to FROM outbox_message WHERE idempotency_key = 'before'")
            ).all() == [(None,)]
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        own.drop()


def test_the_inbound_reply_revision_goes_down_and_up_again(sandbox, tmp_path):
    """0021 (inbound_reply), on a database of its own: gone at 0020, back with its unique Message-ID."""
    own = DatabaseSandbox(sandbox.backend, tmp_path)
    try:

        def unique_message_id() -> bool | None:
            inspector = inspect(own.engine)
            if "inbound_reply" not in inspector.get_table_names():
                return None
            return any(c["column_names"] == ["message_id"] for c in inspector.get_unique_constraints("inbound_reply"))

        assert unique_message_id() is True
        command.downgrade(alembic_config(own.url), "0020")
        own.engine.dispose()
        assert unique_message_id() is None
        upgrade(own.url)
        own.engine.dispose()
        assert unique_message_id() is True
        with own.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        own.drop()


def test_the_outbox_threading_revision_goes_down_and_up_again(sandbox, tmp_path):
    """0024 (outbox_message.thread_references), on a database of its own: gone one revision below
    it, back after, an answer's References kept across neither (the column is new)."""
    own = DatabaseSandbox(sandbox.backend, tmp_path)
    try:

        def present() -> bool:
            return "thread_references" in {c["name"] for c in inspect(own.engine).get_columns("outbox_message")}

        assert present()
        command.downgrade(alembic_config(own.url), "0024-1")
        own.engine.dispose()
        assert not present()
        upgrade(own.url)
        own.engine.dispose()
        assert present()
        with own.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        own.drop()
