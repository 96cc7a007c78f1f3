"""Records: drop the index on patient_id alone.

Migration 0017's (patient_id, concept, id) starts with patient_id, so it answers every query
the old index did; the old one only cost each record write an index entry more.

Revision ID: 0018
Revises: 0017
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_records_patient_id", "records")


def downgrade() -> None:
    op.create_index("ix_records_patient_id", "records", ["patient_id"])
