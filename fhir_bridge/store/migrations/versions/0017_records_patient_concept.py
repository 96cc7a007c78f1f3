"""Records: an index on (patient_id, concept, id) for a patient's records of a concept.

Saving a record lists its patient's records of some concepts (the consequences of a change);
without this index SQLite answered that from the primary key (concept, id), reading every
record of the concept, and PostgreSQL ANDed the patient index with a scan of the same primary
key range: either way a save cost more the more records the store held (bench/scale_bench.py).

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_records_patient_concept", "records", ["patient_id", "concept", "id"])


def downgrade() -> None:
    op.drop_index("ix_records_patient_concept", "records")
