"""Audit: one AuditEvent per access.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
        sa.Column("patient_id", sa.String(64)),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("subtype", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("agent", sa.String(200)),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_events_recorded", "audit_events", ["recorded"])
    op.create_index("ix_audit_events_patient_id", "audit_events", ["patient_id"])


def downgrade() -> None:
    op.drop_table("audit_events")
