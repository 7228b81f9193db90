"""The consolidated report stage: cycle_stage.goes_on_at and issued_report

A stage the chain leaves at its due time (the annual reports, on 30 November) records when in
`goes_on_at`; the sweep wakes the run then, once. `issued_report` keeps the lead agency's
consolidated report of each year as issued: its number, the DOCX and PDF, who it went to.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 03:00:00+00:00
"""
import sqlalchemy as sa
from alembic import op

from approvals.db import UtcDateTime

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cycle_stage', schema=None) as batch_op:
        batch_op.add_column(sa.Column('goes_on_at', UtcDateTime(timezone=True), nullable=True))
    op.create_table(
        'issued_report',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('cycle_id', sa.Uuid(), nullable=False),
        sa.Column('request_id', sa.Uuid(), nullable=False),
        sa.Column('year', sa.Integer(), nullable=False),
        sa.Column('symbol', sa.String(length=40), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('issued_on', sa.Date(), nullable=False),
        sa.Column('issued_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('recipients', sa.JSON(), nullable=False),
        sa.Column('docx', sa.LargeBinary(), nullable=False),
        sa.Column('pdf', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['cycle_id'], ['cycle.id'], name=op.f('fk_issued_report_cycle_id_cycle')),
        sa.ForeignKeyConstraint(['request_id'], ['approval_request.id'],
                                name=op.f('fk_issued_report_request_id_approval_request')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_issued_report')),
        sa.UniqueConstraint('cycle_id', name=op.f('uq_issued_report_cycle_id')),
        sa.UniqueConstraint('symbol', 'year', 'number', name=op.f('uq_issued_report_symbol_year_number')),
    )


def downgrade() -> None:
    op.drop_table('issued_report')
    with op.batch_alter_table('cycle_stage', schema=None) as batch_op:
        batch_op.drop_column('goes_on_at')
