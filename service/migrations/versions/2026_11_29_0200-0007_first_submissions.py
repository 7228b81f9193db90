"""first submissions: a submission link is for a step's first submission or a resubmission

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 02:00:00+00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('submission_link', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), nullable=False, server_default='resubmission'))


def downgrade() -> None:
    with op.batch_alter_table('submission_link', schema=None) as batch_op:
        batch_op.drop_column('kind')
