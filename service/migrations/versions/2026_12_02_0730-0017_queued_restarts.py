"""Restarts go through the wake queue: wake.requested_by

A coordinator's restart of a cycle is queued as a wake (reason `restart` or `restart_forced`)
and delivered by the service like any other, so the coordinator never waits on Prefect. The
wake keeps who asked, for the restart's audit row.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 07:30:00+00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('wake', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requested_by', sa.String(length=96), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('wake', schema=None) as batch_op:
        batch_op.drop_column('requested_by')
