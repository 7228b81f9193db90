"""outbox_message.thread_references: the Message-IDs an email answers (References, In-Reply-To)

The answer to an official's emailed reply, and the receipt of an applied one, thread under that
reply in the official's mail client: they carry In-Reply-To and References naming it. The outbox
keeps them, oldest first, space-separated (the last is the In-Reply-To). Null for every other
email (and every row made before).

Revision ID: 0024
Revises: 0026
Create Date: 2026-12-07 12:00:00+00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('thread_references', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_column('thread_references')
