"""Pull rejects: one row per resource and reason (reason_hash, last_seen_at, times_seen);
the duplicates earlier pulls stored are folded into one.

Revision ID: 0013
Revises: 0012
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_rejects") as batch:
        batch.add_column(sa.Column("reason_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("times_seen", sa.Integer, nullable=True))
    conn = op.get_bind()
    rejects = sa.table("sync_rejects", sa.column("id", sa.Integer),
                       sa.column("target", sa.String), sa.column("resource_type", sa.String),
                       sa.column("remote_id", sa.String), sa.column("reason", sa.Text),
                       sa.column("created_at", sa.DateTime(timezone=True)),
                       sa.column("reason_hash", sa.String),
                       sa.column("last_seen_at", sa.DateTime(timezone=True)),
                       sa.column("times_seen", sa.Integer))
    keep: dict[tuple, dict] = {}
    for row in conn.execute(sa.select(rejects).order_by(rejects.c.id)):
        digest = hashlib.sha256(row.reason.encode("utf-8")).hexdigest()
        key = (row.target, row.resource_type, row.remote_id, digest)
        if key in keep:  # an older copy of the same reject: fold it into the newest
            conn.execute(rejects.delete().where(rejects.c.id == keep[key]["id"]))
            keep[key] = {"id": row.id, "first": keep[key]["first"],
                         "times": keep[key]["times"] + 1, "last": row.created_at}
        else:
            keep[key] = {"id": row.id, "first": row.created_at, "times": 1,
                         "last": row.created_at}
    for (_, _, _, digest), kept in keep.items():
        conn.execute(rejects.update().where(rejects.c.id == kept["id"]).values(
            reason_hash=digest, created_at=kept["first"], last_seen_at=kept["last"],
            times_seen=kept["times"]))
    with op.batch_alter_table("sync_rejects") as batch:
        batch.alter_column("reason_hash", nullable=False)
        batch.alter_column("last_seen_at", nullable=False)
        batch.alter_column("times_seen", nullable=False)
        batch.create_index("ux_sync_rejects_resource_reason",
                           ["target", "resource_type", "remote_id", "reason_hash"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("sync_rejects") as batch:
        batch.drop_index("ux_sync_rejects_resource_reason")
        batch.drop_column("times_seen")
        batch.drop_column("last_seen_at")
        batch.drop_column("reason_hash")
