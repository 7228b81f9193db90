"""outbox_message.reply_to: an email's Reply-To, or the placeholder of one

An email that asks for a decision carries its reply address (revision 0019). The outbox keeps
the placeholder the dispatcher resolves as it sends, as it does for the link in the body, so the
reply token never sits in the outbox. Null for every other email (and every row made before).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 22:10:00+00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply_to', sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox_message', schema=None) as batch_op:
        batch_op.drop_column('reply_to')
