"""Initial tables: records, resources, resource_history, outbox, idempotency_keys.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("concept", sa.String(40), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_records_patient_id", "records", ["patient_id"])
    op.create_table(
        "resources",
        sa.Column("resource_type", sa.String(40), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("concept", sa.String(40), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64)),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", TS, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_index("ix_resources_patient_id", "resources", ["patient_id"])
    op.create_index("ix_resources_last_updated", "resources", ["last_updated"])
    op.create_index("ix_resources_owner", "resources", ["concept", "record_id"])
    op.create_table(
        "resource_history",
        sa.Column("resource_type", sa.String(40), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, primary_key=True),
        sa.Column("last_updated", TS, nullable=False),
        sa.Column("content", sa.Text),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("operation", sa.String(10), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TS),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_outbox_status", "outbox", ["status"])
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("location", sa.String(300)),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("idempotency_keys", "outbox", "resource_history", "resources", "records"):
        op.drop_table(table)
