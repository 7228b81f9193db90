"""channel_message.delivery, delivered_at, report_due_at: the providers' delivery reports

A Zalo or SMS message the provider took is asked after (notifications.delivery_reports): it
reached the phone (delivered, with when), the provider gave up (undelivered: the next channel),
or no report came within the set time (unconfirmed: the next channel). Rows made before are
left as they were: nothing is asked of them.

Revision ID: 0027
Revises: 0024
Create Date: 2026-12-07 14:00:00+00:00
"""
import sqlalchemy as sa
from alembic import op

from approvals.db import UtcDateTime

revision = '0027'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('channel_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivery', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('delivered_at', UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('report_due_at', UtcDateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_channel_message_report",
        "channel_message",
        ["report_due_at"],
        unique=False,
        postgresql_where=sa.text("status = 'sent'"),
        sqlite_where=sa.text("status = 'sent'"),
    )


def downgrade() -> None:
    op.drop_index("ix_channel_message_report", table_name="channel_message")
    with op.batch_alter_table('channel_message', schema=None) as batch_op:
        batch_op.drop_column('report_due_at')
        batch_op.drop_column('delivered_at')
        batch_op.drop_column('delivery')
