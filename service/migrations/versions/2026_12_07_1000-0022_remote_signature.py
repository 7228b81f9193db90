"""remote_signature: the director's signature asked of a remote signing provider

The run that issues a report whose director signs remotely (confirming on the phone) asks the
provider and waits, suspended; the sweep polls the provider and wakes the run once the signature
came back or the request lapsed. One awaiting request per cycle (a partial unique index).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 10:00:00+00:00
"""

import sqlalchemy as sa
from alembic import op

from approvals.db import UtcDateTime

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "remote_signature",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("cycle_id", sa.Uuid(), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("signer", sa.String(length=64), nullable=False),
        sa.Column("transaction_id", sa.String(length=100), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("next_poll_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("answered_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("signature", sa.LargeBinary(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("told_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["cycle_id"], ["cycle.id"], name=op.f("fk_remote_signature_cycle_id_cycle")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["approval_request.id"], name=op.f("fk_remote_signature_request_id_approval_request")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remote_signature")),
        sa.UniqueConstraint("transaction_id", name=op.f("uq_remote_signature_transaction_id")),
    )
    op.create_index(op.f("ix_remote_signature_cycle_id"), "remote_signature", ["cycle_id"], unique=False)
    op.create_index(
        "uq_remote_signature_awaiting",
        "remote_signature",
        ["cycle_id"],
        unique=True,
        postgresql_where=sa.text("status = 'awaiting'"),
        sqlite_where=sa.text("status = 'awaiting'"),
    )


def downgrade() -> None:
    op.drop_index("uq_remote_signature_awaiting", table_name="remote_signature")
    op.drop_index(op.f("ix_remote_signature_cycle_id"), table_name="remote_signature")
    op.drop_table("remote_signature")
