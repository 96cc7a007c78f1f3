"""Subscriptions: the client that created each one (issuer, subject, client id).

Subscriptions made before this revision have no owner_client; they are visible to system
tokens only (docs/subscriptions.md).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("subscriptions", sa.Column("owner_client", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_column("owner_client")
