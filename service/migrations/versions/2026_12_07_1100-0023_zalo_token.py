"""zalo_token: the Zalo OA's access and refresh tokens

The ZNS channel's OA access token lasts about 25 h and its refresh token is single-use: every
process reads them from this table, and one at a time refreshes them under the row's lock.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 11:00:00+00:00
"""

import sqlalchemy as sa
from alembic import op

from approvals.db import UtcDateTime

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zalo_token",
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=False),
        sa.Column("expires_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("failed_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_zalo_token")),
    )


def downgrade() -> None:
    op.drop_table("zalo_token")
