"""approval_request.told_at: when the stage's superior heard that the step is overdue

The sweep told a stage's superior of each overdue branch in its own email: at the annual
report's deadline the PPC's Vice-Chair got one email per unit that had not reported (88 of
them in 2026). Now the sweep marks a branch overdue, and one email per stage and superior
lists every branch not yet told of (`told_at` null), in the transaction that sets `told_at`.
A step that was escalated, or that had nobody to tell, is marked told at once. Rows already
overdue were told one by one before: they are marked told.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 13:00:00+00:00
"""
import sqlalchemy as sa
from alembic import op

from approvals.db import UtcDateTime

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('approval_request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('told_at', UtcDateTime(timezone=True), nullable=True))
    op.execute("UPDATE approval_request SET told_at = escalated_at WHERE escalated_at IS NOT NULL")
    with op.batch_alter_table('approval_request', schema=None) as batch_op:
        batch_op.create_index('ix_approval_request_to_tell', ['escalated_at'], unique=False,
                              postgresql_where=sa.text('told_at IS NULL AND escalated_at IS NOT NULL'),
                              sqlite_where=sa.text('told_at IS NULL AND escalated_at IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('approval_request', schema=None) as batch_op:
        batch_op.drop_index('ix_approval_request_to_tell')
        batch_op.drop_column('told_at')
