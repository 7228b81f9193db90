"""link_failure: failed link requests per client, shared by every web process

The limit on guessing links counted failures in each process's memory: with several web
processes behind a proxy, a client had that many tries per process. One row per failure,
by client and time; the window's rows are counted; older rows are deleted.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 12:00:00+00:00
"""
import sqlalchemy as sa
from alembic import op

from approvals.db import UtcDateTime

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'link_failure',
        sa.Column('id', _big_id, autoincrement=True, nullable=False),
        sa.Column('client_key', sa.String(length=64), nullable=False),
        sa.Column('at', UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_link_failure')),
    )
    with op.batch_alter_table('link_failure', schema=None) as batch_op:
        batch_op.create_index('ix_link_failure_client', ['client_key', 'at'], unique=False)
        batch_op.create_index('ix_link_failure_at', ['at'], unique=False)


def downgrade() -> None:
    op.drop_table('link_failure')
