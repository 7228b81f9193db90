"""inbound_reply: each emailed reply received, once

A reply is applied exactly once however often it is delivered, and by however many receivers at
once: its Message-ID (or, without one, the SHA-256 of the message) is unique here, and the row is
written in the transaction of the decision and the emails it causes. It keeps the reply token's
hash (never the token), the From address, when it came and what became of it: applied, or the
gate it failed, and whether the sender was answered.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 09:00:00+00:00
"""
import sqlalchemy as sa
from alembic import op

from approvals.db import UtcDateTime

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'inbound_reply',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('message_id', sa.String(length=255), nullable=False),
        sa.Column('reply_token_hash', sa.String(length=64), nullable=True),
        sa.Column('from_address', sa.String(length=320), nullable=False),
        sa.Column('received_at', UtcDateTime(timezone=True), nullable=False),
        sa.Column('outcome', sa.String(length=32), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('answered', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_reply')),
        sa.UniqueConstraint('message_id', name=op.f('uq_inbound_reply_message_id')),
    )


def downgrade() -> None:
    op.drop_table('inbound_reply')
