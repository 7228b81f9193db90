"""a cycle's run and what needs a person; wakes: the durable queue that resumes a cycle's run

A cycle records the flow run that carries it (one at a time), the run's heartbeat while it
works, why it needs a coordinator, when it finished and how far its deadlines were moved for
a late start. A stage records when all its branches were opened and when it may open. A wake
is written in the same transaction as the change that settles a stage (or cancels a cycle,
or opens a scheduled stage); the service delivers it to the run with a claim, in order, with
back-off, and parks what can never be delivered.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 10:00:00+00:00
"""
import sqlalchemy as sa
from alembic import op

from approvals.db import UtcDateTime

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table('cycle', schema=None) as batch_op:
        batch_op.add_column(sa.Column('run_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('run_state', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('attention', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('attention_at', UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('attention_detail', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('finished_at', UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('shift_days', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('restarts', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('cycle_stage', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opened_at', UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('branches', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('opens_at', UtcDateTime(timezone=True), nullable=True))
    op.create_table(
        'wake',
        sa.Column('id', _big_id, autoincrement=True, nullable=False),
        sa.Column('cycle_id', sa.Uuid(), nullable=False),
        sa.Column('stage', sa.String(length=64), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('lease_until', UtcDateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('run_id', sa.String(length=64), nullable=True),
        sa.Column('created_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('done_at', UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['cycle_id'], ['cycle.id'], name=op.f('fk_wake_cycle_id_cycle')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_wake')),
    )
    queued = sa.text("status = 'queued'")
    with op.batch_alter_table('wake', schema=None) as batch_op:
        # One queued wake per stage: a second settlement while one waits adds nothing.
        batch_op.create_index('uq_wake_queued', ['cycle_id', 'stage'], unique=True,
                              postgresql_where=queued, sqlite_where=queued)
        batch_op.create_index('ix_wake_due', ['next_attempt_at'], unique=False,
                              postgresql_where=queued, sqlite_where=queued)
        batch_op.create_index('ix_wake_parked', ['created_at'], unique=False,
                              postgresql_where=sa.text("status = 'parked'"), sqlite_where=sa.text("status = 'parked'"))
    with op.batch_alter_table('cycle', schema=None) as batch_op:
        batch_op.create_index('ix_cycle_open', ['run_state'], unique=False,
                              postgresql_where=sa.text("finished_at IS NULL"),
                              sqlite_where=sa.text("finished_at IS NULL"))


def downgrade() -> None:
    with op.batch_alter_table('cycle', schema=None) as batch_op:
        batch_op.drop_index('ix_cycle_open')
    op.drop_table('wake')
    with op.batch_alter_table('cycle_stage', schema=None) as batch_op:
        batch_op.drop_column('opens_at')
        batch_op.drop_column('branches')
        batch_op.drop_column('opened_at')
    with op.batch_alter_table('cycle', schema=None) as batch_op:
        for column in ('restarts', 'shift_days', 'finished_at', 'attention_detail', 'attention_at', 'attention',
                       'heartbeat_at', 'run_state', 'run_id'):
            batch_op.drop_column(column)
