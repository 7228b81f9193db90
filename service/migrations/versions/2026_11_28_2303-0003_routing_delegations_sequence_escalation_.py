"""routing: delegations, sequence, escalation, rounds

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 23:03:16.938778+00:00
"""
import sqlalchemy as sa
from alembic import op

import approvals.db

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('delegation',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('delegator', sa.String(length=64), nullable=False),
    sa.Column('delegate', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=96), nullable=True),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=96), nullable=False),
    sa.Column('created_at', approvals.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', approvals.db.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delegation'))
    )
    with op.batch_alter_table('delegation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delegation_delegator'), ['delegator'], unique=False)

    with op.batch_alter_table('approval_request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requested_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('previous_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('data', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('reminders_sent', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('quorum', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('escalated_at', approvals.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('expires_at', approvals.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_approval_request_previous_id_approval_request'), 'approval_request', ['previous_id'], ['id'])

    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_behalf_of', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('position', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('replaced_by', sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_assignment_replaced_by_assignment'), 'assignment', ['replaced_by'], ['id'])

    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.add_column(sa.Column('on_behalf_of', sa.String(length=64), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.drop_column('on_behalf_of')

    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_assignment_replaced_by_assignment'), type_='foreignkey')
        batch_op.drop_column('replaced_by')
        batch_op.drop_column('position')
        batch_op.drop_column('on_behalf_of')

    with op.batch_alter_table('approval_request', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_approval_request_previous_id_approval_request'), type_='foreignkey')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('escalated_at')
        batch_op.drop_column('quorum')
        batch_op.drop_column('reminders_sent')
        batch_op.drop_column('data')
        batch_op.drop_column('previous_id')
        batch_op.drop_column('requested_by')

    with op.batch_alter_table('delegation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delegation_delegator'))

    op.drop_table('delegation')
