"""FHIR search: an index on (resource_type, patient_id, id) for a patient's resources of a type.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_resources_type_patient", "resources",
                    ["resource_type", "patient_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_resources_type_patient", "resources")
