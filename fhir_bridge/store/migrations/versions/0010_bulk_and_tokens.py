"""Bulk Data export jobs, and the jti of every accepted token-endpoint client assertion.

Revision ID: 0010
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_client", sa.Text, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("request_url", sa.Text, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("transaction_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("progress", sa.String(200)),
        sa.Column("output", sa.Text),
        sa.Column("errors", sa.Text),
        sa.Column("claimed_by", sa.String(80)),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_bulk_jobs_status", "bulk_jobs", ["status"])
    op.create_table(
        "token_assertions",
        sa.Column("client_id", sa.String(200), primary_key=True),
        sa.Column("jti", sa.String(200), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_token_assertions_expires_at", "token_assertions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_token_assertions_expires_at", "token_assertions")
    op.drop_table("token_assertions")
    op.drop_index("ix_bulk_jobs_status", "bulk_jobs")
    op.drop_table("bulk_jobs")
