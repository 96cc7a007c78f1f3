"""First writes per push target: the request kind `target check` chose (client-assigned ids
or conditional update), and the resources that must keep conditional update because a write
of theirs may have reached the target before client ids were chosen (sync/first_writes.py).

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_target_modes",
        sa.Column("target", sa.String(80), primary_key=True),
        sa.Column("first_write", sa.String(20), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "sync_conditional_only",
        sa.Column("target", sa.String(80), primary_key=True),
        sa.Column("resource_type", sa.String(40), primary_key=True),
        sa.Column("local_id", sa.String(64), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("sync_conditional_only")
    op.drop_table("sync_target_modes")
