"""Pull leases: one row per target and managed patient, held by the pull worker reading that
patient's changes (store/leases.py); the next patient of a pass is found by index.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pull_leases",
        sa.Column("target", sa.String(80), primary_key=True),
        sa.Column("patient_remote_id", sa.String(64), primary_key=True),
        sa.Column("claimed_by", sa.String(80)),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
        sa.Column("pulled_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pull_leases_next", "pull_leases",
                    ["target", "pulled_at", "patient_remote_id"])


def downgrade() -> None:
    op.drop_index("ix_pull_leases_next", "pull_leases")
    op.drop_table("pull_leases")
