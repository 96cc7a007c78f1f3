"""PostgreSQL: multi-column statistics on search_index (resource_type, param, system, value),
so the planner knows how many rows a search term matches.

Without them it multiplies the selectivity of each column as if they were independent
(a code value is much commoner among ``Observation`` ``code`` rows than in the whole table),
estimates a few dozen rows where there are thousands, and picks the plan for a rare term:
``Observation?patient=&code=`` read every body weight in the store before keeping the
patient's (10k resources), and ``MedicationRequest?status=active`` read every active
prescription's body to sort out the first page (1.9 s at 1M resources; 63 ms with them).
See bench/README.md (growth). SQLite has no such statistics; its planner takes the index
the query names.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

NAME = "st_search_index_terms"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE STATISTICS IF NOT EXISTS {NAME} (mcv, dependencies) "
                   "ON resource_type, param, system, value FROM search_index")
        op.execute("ANALYZE search_index")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP STATISTICS IF EXISTS {NAME}")
