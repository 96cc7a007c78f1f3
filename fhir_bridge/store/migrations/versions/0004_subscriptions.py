"""Subscriptions: the subscriptions, their event log and delivery state.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("topic", sa.String(200)),
        sa.Column("criteria", sa.Text, nullable=False),
        sa.Column("patient_ref", sa.String(64)),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", TS, nullable=False),
        sa.Column("ends_at", TS),
        sa.Column("owner", sa.String(200)),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_index("ix_subscriptions_patient_ref", "subscriptions", ["patient_ref"])
    op.create_table(
        "subscription_events",
        sa.Column("subscription_id", sa.String(64), primary_key=True),
        sa.Column("event_number", sa.Integer, primary_key=True),
        sa.Column("recorded", TS, nullable=False),
        sa.Column("focus_type", sa.String(40), nullable=False),
        sa.Column("focus_id", sa.String(64), nullable=False),
        sa.Column("focus_version", sa.Integer, nullable=False),
        sa.Column("operation", sa.String(10), nullable=False),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("patient_id", sa.String(64)),
        sa.Column("patient_reference", sa.String(80)),
    )
    op.create_table(
        "subscription_delivery",
        sa.Column("subscription_id", sa.String(64), primary_key=True),
        sa.Column("handshake_done", sa.Boolean, nullable=False),
        sa.Column("delivered_through", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TS),
        sa.Column("heartbeat_due_at", TS),
        sa.Column("last_sent_at", TS),
        sa.Column("last_error", sa.String(200)),
        sa.Column("claimed_by", sa.String(80)),
        sa.Column("claimed_until", TS),
    )


def downgrade() -> None:
    op.drop_table("subscription_delivery")
    op.drop_table("subscription_events")
    op.drop_table("subscriptions")
