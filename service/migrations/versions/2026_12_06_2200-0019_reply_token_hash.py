"""assignment.reply_token_hash: the reply address's token, kept as a hash

Every email that asks for a decision has its own Reply-To, `duyet+<token>@<reply domain>`, one per
assignment and link generation (`approvals.tokens`). As with the link's token, only its SHA-256 is
kept, set whenever a generation is issued, so the reply address dies with the link. Rows made
before have none (null): their emails went without a Reply-To, and their next generation (a
reminder) gets one.

A unique index, not a unique constraint: SQLite adds it without copying the table (which other
tables' foreign keys reference), and it finds the assignment a reply names.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 22:00:00+00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply_token_hash', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_assignment_reply_token_hash', ['reply_token_hash'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.drop_index('ix_assignment_reply_token_hash')
        batch_op.drop_column('reply_token_hash')
