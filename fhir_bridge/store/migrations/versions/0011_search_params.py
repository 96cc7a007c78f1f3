"""FHIR search: the search-parameter index (search_index), filled for the stored resources.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_TEXT = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "search_index",
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
        sa.Column("system", _TEXT),
        sa.Column("value", _TEXT),
    )
    op.create_index("ix_search_index_value", "search_index",
                    ["resource_type", "param", "value", "resource_id"])
    op.create_index("ix_search_index_resource", "search_index",
                    ["resource_type", "resource_id", "param", "value"])
    # Backfill with the same code that indexes every save (what the index holds is defined
    # once, by the search parameter table); imported here, not at the top, so that loading
    # the migration scripts needs nothing above the store.
    from fhir_bridge.facade.indexing import backfill

    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("search_index")
