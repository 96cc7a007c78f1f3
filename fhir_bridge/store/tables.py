"""The tables. Alembic migrations in ``migrations/versions`` create exactly these
(a test compares them)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

#: Internal records, one row per record, the validated JSON as data.
records = sa.Table(
    "records", metadata,
    sa.Column("concept", sa.String(40), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("patient_id", sa.String(64), index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

#: The current FHIR version of every resource mapped from a record.
resources = sa.Table(
    "resources", metadata,
    sa.Column("resource_type", sa.String(40), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("concept", sa.String(40), nullable=False),
    sa.Column("record_id", sa.String(64), nullable=False),
    sa.Column("patient_id", sa.String(64), index=True),
    sa.Column("version_id", sa.Integer, nullable=False),
    sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("content", sa.Text, nullable=False),  # JSON without meta.versionId/lastUpdated
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.Index("ix_resources_owner", "concept", "record_id"),
)

#: Every version of every resource (vread, _history).
resource_history = sa.Table(
    "resource_history", metadata,
    sa.Column("resource_type", sa.String(40), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("version_id", sa.Integer, primary_key=True),
    sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
    sa.Column("content", sa.Text),  # null for a deletion
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
)

#: One row per resource change, for sync workers to push (status pending -> done | dead).
outbox = sa.Table(
    "outbox", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("resource_type", sa.String(40), nullable=False),
    sa.Column("resource_id", sa.String(64), nullable=False),
    sa.Column("version_id", sa.Integer, nullable=False),
    sa.Column("operation", sa.String(10), nullable=False),  # upsert | delete
    sa.Column("status", sa.String(10), nullable=False, default="pending", index=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

#: Idempotency keys of POST requests: a retried request gets the first answer again.
idempotency_keys = sa.Table(
    "idempotency_keys", metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("location", sa.String(300)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
