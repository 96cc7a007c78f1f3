"""Outbox: a partial index on seq of the pending rows, for the push's claim.

A claim takes the first due rows in seq order (``WHERE status = 'pending' ... ORDER BY seq
LIMIT n``). The planner walked the primary key from the first row, skipping every row already
done: after 44,000 rows of a 1M-row push each claim skipped 44,000 rows (57 ms), and the cost
grew with every row pushed, so a push cost grew with the square of its size. The partial index
holds only the pending rows, in seq order: a claim reads what it takes
(bench/scale_bench.py).

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index("ix_outbox_pending_seq", "outbox", ["seq"],
                    postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    op.drop_index("ix_outbox_pending_seq", "outbox")
