"""channel_message: each Zalo or SMS message to an official, beside the email it repeats

A sibling of outbox_message with the same claim, lease and retry columns (and partial indexes):
the channel dispatcher claims, fences and backs off as the email dispatcher does.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 13:00:00+00:00
"""

import sqlalchemy as sa
from alembic import op

from approvals.db import UtcDateTime

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_message",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=240), nullable=False),
        sa.Column("email_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("official_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("fallbacks", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", UtcDateTime(timezone=True), nullable=True),
        sa.Column("provider_id", sa.String(length=200), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("fallback_key", sa.String(length=240), nullable=True),
        sa.Column("attempted_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_message")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_channel_message_idempotency_key")),
    )
    op.create_index(
        "ix_channel_message_due",
        "channel_message",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'queued'"),
        sqlite_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "ix_channel_message_lease",
        "channel_message",
        ["lease_until"],
        postgresql_where=sa.text("status = 'sending'"),
        sqlite_where=sa.text("status = 'sending'"),
    )
    op.create_index("ix_channel_message_email_key", "channel_message", ["email_key"])
    op.create_index("ix_channel_message_attempted", "channel_message", ["attempted_at"])


def downgrade() -> None:
    op.drop_table("channel_message")
