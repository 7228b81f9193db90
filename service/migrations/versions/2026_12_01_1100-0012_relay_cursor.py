"""relay_cursor: how far the audit log has been relayed elsewhere (as Prefect events)

One row per relay: the last audit row relayed, and a lease so that of several web
processes one relays at a time, none twice.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 11:00:00+00:00
"""
import sqlalchemy as sa
from alembic import op

from approvals.db import UtcDateTime

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'relay_cursor',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('last_id', sa.BigInteger(), nullable=False),
        sa.Column('lease_until', UtcDateTime(timezone=True), nullable=True),
        sa.Column('updated_at', UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_relay_cursor')),
    )


def downgrade() -> None:
    op.drop_table('relay_cursor')
