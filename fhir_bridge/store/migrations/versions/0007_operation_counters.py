"""Running totals of push, pull and subscription delivery per target (read by /metrics), and
the heartbeats of `fhir-bridge worker` processes (read by /readyz).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operation_counters",
        sa.Column("scope", sa.String(80), primary_key=True),
        sa.Column("name", sa.String(60), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker", sa.String(80), primary_key=True),
        sa.Column("tasks", sa.String(200), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(200)),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
    op.drop_table("operation_counters")
