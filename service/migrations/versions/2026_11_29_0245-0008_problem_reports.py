"""problem reports: a unit raises a problem with the PPC (stage E)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 02:45:00+00:00
"""
import sqlalchemy as sa
from alembic import op

import approvals.db

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('problem_report',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('unit', sa.String(length=64), nullable=False),
    sa.Column('recorded_by', sa.String(length=96), nullable=False),
    sa.Column('created_at', approvals.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('cycle_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['cycle_id'], ['cycle.id'], name=op.f('fk_problem_report_cycle_id_cycle')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_problem_report'))
    )


def downgrade() -> None:
    op.drop_table('problem_report')
