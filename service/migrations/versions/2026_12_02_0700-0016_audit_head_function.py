"""The audit chain's head in one round trip (PostgreSQL)

`kehoach_audit_head(key)` takes the chain's append lock (a transaction-level advisory lock)
and returns the hash of the last row. A VOLATILE function takes a fresh snapshot for each
query it runs, so the hash is read after the lock is held: it sees every append committed
before it, as the two statements it replaces did. SQLite's writers take turns anyway; it
needs nothing.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 07:00:00+00:00
"""
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("""
        CREATE FUNCTION kehoach_audit_head(lock_key bigint) RETURNS text
        LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(lock_key);
            RETURN (SELECT hash FROM audit_event ORDER BY id DESC LIMIT 1);
        END
        $$
    """)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP FUNCTION kehoach_audit_head(bigint)")
