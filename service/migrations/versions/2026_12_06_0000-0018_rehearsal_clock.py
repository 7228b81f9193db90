"""A rehearsal's clock: cycle.rehearsal_speed, cycle.rehearsal_began

A rehearsal runs a cycle of the shipped plan with its calendar compressed (a year in minutes).
Its planned dates fall on the wall clock through `approvals.deadlines.CycleClock`: a planned day
lasts 86,400 / rehearsal_speed wall seconds from rehearsal_began. Both are NULL for a real cycle.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 00:00:00+00:00
"""
import sqlalchemy as sa
from alembic import op

from approvals.db import UtcDateTime

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cycle', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rehearsal_speed', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('rehearsal_began', UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cycle', schema=None) as batch_op:
        batch_op.drop_column('rehearsal_began')
        batch_op.drop_column('rehearsal_speed')
