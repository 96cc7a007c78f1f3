"""Sync: record sources, outbox claims, remote id map, conflicts, watermarks, rejects.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("source", sa.String(100)))
    with op.batch_alter_table("resource_history") as batch:
        batch.add_column(sa.Column("source", sa.String(100)))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(80)))
        batch.add_column(sa.Column("claimed_until", TS))
    op.create_index("ix_outbox_resource", "outbox", ["resource_type", "resource_id"])
    op.create_index("ix_outbox_claimed_by", "outbox", ["claimed_by"])
    op.create_table(
        "remote_resources",
        sa.Column("target", sa.String(80), primary_key=True),
        sa.Column("resource_type", sa.String(40), primary_key=True),
        sa.Column("local_id", sa.String(64), primary_key=True),
        sa.Column("remote_id", sa.String(64), nullable=False),
        sa.Column("remote_version", sa.String(40)),
        sa.Column("pushed_hash", sa.String(64)),
        sa.Column("synced_at", TS, nullable=False),
    )
    op.create_index("ix_remote_resources_remote", "remote_resources",
                    ["target", "resource_type", "remote_id"], unique=True)
    op.create_table(
        "sync_conflicts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(80), nullable=False),
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("local_id", sa.String(64), nullable=False),
        sa.Column("remote_id", sa.String(64), nullable=False),
        sa.Column("remote_version", sa.String(40)),
        sa.Column("local_content", sa.Text),
        sa.Column("remote_content", sa.Text),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("resolved_at", TS),
    )
    op.create_table(
        "sync_watermarks",
        sa.Column("target", sa.String(80), primary_key=True),
        sa.Column("resource_type", sa.String(40), primary_key=True),
        sa.Column("patient_remote_id", sa.String(64), primary_key=True),
        sa.Column("watermark", sa.String(40), nullable=False),
    )
    op.create_table(
        "sync_rejects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(80), nullable=False),
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("remote_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("sync_rejects", "sync_watermarks", "sync_conflicts", "remote_resources"):
        op.drop_table(table)
    op.drop_index("ix_outbox_claimed_by", "outbox")
    op.drop_index("ix_outbox_resource", "outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
    for table in ("resource_history", "records"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("source")
