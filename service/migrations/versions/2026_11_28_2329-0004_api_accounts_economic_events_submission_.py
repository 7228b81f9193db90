"""api accounts, economic events, submission links

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 23:29:51.696828+00:00
"""
import sqlalchemy as sa
from alembic import op

import approvals.db

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_account',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=96), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', approvals.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('disabled_at', approvals.db.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_account')),
    sa.UniqueConstraint('name', name=op.f('uq_api_account_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_account_token_hash'))
    )
    op.create_table('economic_event',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('recorded_by', sa.String(length=96), nullable=False),
    sa.Column('created_at', approvals.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('cycle_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['cycle_id'], ['cycle.id'], name=op.f('fk_economic_event_cycle_id_cycle')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_economic_event'))
    )
    op.create_table('submission_link',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('request_id', sa.Uuid(), nullable=False),
    sa.Column('official_id', sa.String(length=64), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('token_generation', sa.Integer(), nullable=False),
    sa.Column('expires_at', approvals.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', approvals.db.UtcDateTime(timezone=True), nullable=False),
    sa.Column('used_at', approvals.db.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['request_id'], ['approval_request.id'], name=op.f('fk_submission_link_request_id_approval_request')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_submission_link')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_submission_link_token_hash'))
    )
    with op.batch_alter_table('submission_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_submission_link_request_id'), ['request_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('submission_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_submission_link_request_id'))

    op.drop_table('submission_link')
    op.drop_table('economic_event')
    op.drop_table('api_account')
