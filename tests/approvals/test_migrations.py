"""The schema the migrations build is the schema the models declare, on each backend: a column
added to a model without its migration (or the other way round) fails here, not in production."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import notifications.models  # noqa: F401  (its tables are in the metadata the migrations build)
from approvals.models import Base


def test_the_migrations_build_the_models_schema(sandbox):
    with sandbox.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
