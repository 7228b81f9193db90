"""outbox: partial indexes, one per question the dispatcher and the dashboard ask

Every update of a row's status (queued -> sending -> sent) moved it in seven indexes,
two of them covering what the two composite ones already did. Now a row sits only in
the index of the state it is in: queued rows by next attempt, sending rows by lease
end, failed rows by creation time; a sent row is in none of them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 05:00:00+00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def _where(status: str) -> dict:
    condition = sa.text(f"status = '{status}'")
    return dict(postgresql_where=condition, sqlite_where=condition)


def upgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_message_lease')
        batch_op.drop_index('ix_outbox_message_due')
        batch_op.drop_index(batch_op.f('ix_outbox_message_status'))
        batch_op.drop_index(batch_op.f('ix_outbox_message_next_attempt_at'))
        batch_op.create_index('ix_outbox_message_due', ['next_attempt_at'], unique=False, **_where('queued'))
        batch_op.create_index('ix_outbox_message_lease', ['lease_until'], unique=False, **_where('sending'))
        batch_op.create_index('ix_outbox_message_failed', ['created_at'], unique=False, **_where('failed'))


def downgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_message_failed')
        batch_op.drop_index('ix_outbox_message_lease')
        batch_op.drop_index('ix_outbox_message_due')
        batch_op.create_index(batch_op.f('ix_outbox_message_next_attempt_at'), ['next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_message_status'), ['status'], unique=False)
        batch_op.create_index('ix_outbox_message_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_outbox_message_lease', ['status', 'lease_until'], unique=False)
