"""short_link: the SMS's short links, by the code's keyed hash, their target sealed

`/l/<code>` redirects to the personal link an SMS stands for (notifications.short_links): the code
is kept only as its HMAC, the target only sealed under the code's key, with its expiry and the
official it was made for.

Revision ID: 0025
Revises: 0023
Create Date: 2026-12-07 13:00:00+00:00
"""

import sqlalchemy as sa
from alembic import op

from approvals.db import UtcDateTime

revision = "0025"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "short_link",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_target", sa.LargeBinary(), nullable=False),
        sa.Column("official_id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_short_link")),
    )
    op.create_index("ix_short_link_expires_at", "short_link", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_short_link_expires_at", table_name="short_link")
    op.drop_table("short_link")
