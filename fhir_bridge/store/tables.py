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
    sa.Column("patient_id", sa.String(64)),  # indexed by ix_records_patient_concept
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # Who wrote this version: "api", or "pull:<target>" for a change made in an EHR.
    sa.Column("source", sa.String(100)),
    # a patient's records of a concept (migration 0017), read by every save's consequences
    sa.Index("ix_records_patient_concept", "patient_id", "concept", "id"),
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
    # FHIR searches: a patient's resources of one type, in id order.
    sa.Index("ix_resources_type_patient", "resource_type", "patient_id", "id"),
)

#: Search-parameter index of the current resources (fhir_bridge/facade/indexing.py): one row
#: per token (system, code), reference (target type, id) and folded string value of each token,
#: reference and string search parameter, rewritten in the transaction that saves the resource.
#: Values are cut at INDEX_VALUE_LENGTH characters; the "C" collation on PostgreSQL makes a
#: prefix a range of the index (SQLite compares bytes anyway).
INDEX_VALUE_LENGTH = 200
_INDEX_TEXT = sa.String(INDEX_VALUE_LENGTH).with_variant(
    sa.String(INDEX_VALUE_LENGTH, collation="C"), "postgresql")
search_index = sa.Table(
    "search_index", metadata,
    sa.Column("resource_type", sa.String(40), nullable=False),
    sa.Column("resource_id", sa.String(64), nullable=False),
    sa.Column("param", sa.String(64), nullable=False),
    sa.Column("system", _INDEX_TEXT),  # token system, or the type a reference points at
    sa.Column("value", _INDEX_TEXT),  # token code, reference id, or folded string
    sa.Index("ix_search_index_value", "resource_type", "param", "value", "resource_id"),
    sa.Index("ix_search_index_resource", "resource_type", "resource_id", "param", "value"),
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
    sa.Column("source", sa.String(100)),
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
    sa.Column("claimed_by", sa.String(80)),
    sa.Column("claimed_until", sa.DateTime(timezone=True)),
    sa.Index("ix_outbox_resource", "resource_type", "resource_id"),
    sa.Index("ix_outbox_claimed_by", "claimed_by"),
    # the claim's scan: the pending rows in seq order, not every row done before them (0019)
    sa.Index("ix_outbox_pending_seq", "seq", postgresql_where=sa.text("status = 'pending'"),
             sqlite_where=sa.text("status = 'pending'")),
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

#: What each sync target holds of our resources: its id and version, and what we last sent.
remote_resources = sa.Table(
    "remote_resources", metadata,
    sa.Column("target", sa.String(80), primary_key=True),
    sa.Column("resource_type", sa.String(40), primary_key=True),
    sa.Column("local_id", sa.String(64), primary_key=True),
    sa.Column("remote_id", sa.String(64), nullable=False),
    sa.Column("remote_version", sa.String(40)),
    sa.Column("pushed_hash", sa.String(64)),
    sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_remote_resources_remote", "target", "resource_type", "remote_id", unique=True),
)

#: How a push writes a resource the target has not confirmed yet (sync/first_writes.py):
#: "client-ids" (PUT Type/<id derived from the record>) or "conditional-update", as chosen by
#: `target check`; no row means conditional update. ``sync_conditional_only``: resources that
#: keep conditional update on that target, because a write of theirs may have landed before.
sync_target_modes = sa.Table(
    "sync_target_modes", metadata,
    sa.Column("target", sa.String(80), primary_key=True),
    sa.Column("first_write", sa.String(20), nullable=False),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
)
sync_conditional_only = sa.Table(
    "sync_conditional_only", metadata,
    sa.Column("target", sa.String(80), primary_key=True),
    sa.Column("resource_type", sa.String(40), primary_key=True),
    sa.Column("local_id", sa.String(64), primary_key=True),
)

#: A change made on both sides: nothing is overwritten until an operator resolves it.
sync_conflicts = sa.Table(
    "sync_conflicts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("target", sa.String(80), nullable=False),
    sa.Column("resource_type", sa.String(40), nullable=False),
    sa.Column("local_id", sa.String(64), nullable=False),
    sa.Column("remote_id", sa.String(64), nullable=False),
    sa.Column("remote_version", sa.String(40)),
    sa.Column("local_content", sa.Text),
    sa.Column("remote_content", sa.Text),
    sa.Column("status", sa.String(12), nullable=False),  # open | kept-local | took-remote
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
)

#: Incremental pull: the newest _lastUpdated seen per target, resource type and patient.
sync_watermarks = sa.Table(
    "sync_watermarks", metadata,
    sa.Column("target", sa.String(80), primary_key=True),
    sa.Column("resource_type", sa.String(40), primary_key=True),
    sa.Column("patient_remote_id", sa.String(64), primary_key=True),
    sa.Column("watermark", sa.String(40), nullable=False),
)

#: Pull leases (store/leases.py): the pull worker holding a patient's row reads that patient's
#: changes; ``pulled_at`` is when a pull of it last finished (the epoch: never), the order in
#: which a pass takes them (ix_pull_leases_next: the next one without sorting them all).
pull_leases = sa.Table(
    "pull_leases", metadata,
    sa.Column("target", sa.String(80), primary_key=True),
    sa.Column("patient_remote_id", sa.String(64), primary_key=True),
    sa.Column("claimed_by", sa.String(80)),
    sa.Column("claimed_until", sa.DateTime(timezone=True)),
    sa.Column("pulled_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_pull_leases_next", "target", "pulled_at", "patient_remote_id"),
)

#: Pulled resources that could not be mapped, with the reason: reported, never dropped. One
#: row per resource and reason (sync/rejects.py): a later pull refusing it again for the same
#: reason updates last_seen_at and the content; a pull that takes it removes its rows.
sync_rejects = sa.Table(
    "sync_rejects", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("target", sa.String(80), nullable=False),
    sa.Column("resource_type", sa.String(40), nullable=False),
    sa.Column("remote_id", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason_hash", sa.String(64), nullable=False),  # sha256 of reason: the key
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("times_seen", sa.Integer, nullable=False, default=1),
    sa.Index("ux_sync_rejects_resource_reason", "target", "resource_type", "remote_id",
             "reason_hash", unique=True),
)

#: What a pull kept of a foreign resource without a place in the internal model: one row per
#: element (its FHIRPath) and reason, written once however often the resource is pulled.
sync_notes = sa.Table(
    "sync_notes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("target", sa.String(80), nullable=False),
    sa.Column("resource_type", sa.String(40), nullable=False),
    sa.Column("remote_id", sa.String(64), nullable=False),
    sa.Column("path", sa.String(300), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("target", "resource_type", "remote_id", "path",
                        name="uq_sync_notes_element"),
)

#: A resource the bridge did not write (pulled from an EHR, written to /fhir), kept as sent
#: (original) beside the bridge's rendering of its record when it was read (baseline): every
#: save of the record merges its new rendering over the original (mapping/foreign.py), so
#: what the bridge serves and pushes keeps what the internal model cannot hold. notes: JSON
#: [[FHIRPath, reason], ...] of the elements kept without a place in the record.
foreign_content = sa.Table(
    "foreign_content", metadata,
    sa.Column("resource_type", sa.String(40), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("concept", sa.String(40), nullable=False),
    sa.Column("record_id", sa.String(64), nullable=False),
    sa.Column("original", sa.Text, nullable=False),
    sa.Column("baseline", sa.Text, nullable=False),
    sa.Column("notes", sa.Text, nullable=False),
    sa.Column("source", sa.String(100), nullable=False),  # "pull:<target>", "fhir", ...
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

#: Running totals of what the workers did (push, pull, subscription delivery) per target:
#: /metrics reads them as counters, so several worker processes add to one total.
#: updated_at of a ``*_ok`` row is the time of the last success.
operation_counters = sa.Table(
    "operation_counters", metadata,
    sa.Column("scope", sa.String(80), primary_key=True),  # target name, or "subscriptions"
    sa.Column("name", sa.String(60), primary_key=True),   # e.g. push_sent, pull_rejected
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

#: Each `fhir-bridge worker` process: what it runs and when it last said it was alive
#: (/readyz lists them; a worker that stops cleanly says so).
worker_heartbeats = sa.Table(
    "worker_heartbeats", metadata,
    sa.Column("worker", sa.String(80), primary_key=True),
    sa.Column("tasks", sa.String(200), nullable=False),  # e.g. push,pull,subscriptions
    sa.Column("state", sa.String(10), nullable=False),  # running | stopped
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_error", sa.String(200)),  # the exception class of the last failed task
)

#: One AuditEvent per access (read, search, write, sync, notification): who, what, which
#: patient, outcome. The FHIR JSON is in content; the columns are what searches filter on.
audit_events = sa.Table(
    "audit_events", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("recorded", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("patient_id", sa.String(64), index=True),  # internal id of the patient concerned
    sa.Column("action", sa.String(1), nullable=False),  # C R U D E
    sa.Column("subtype", sa.String(40), nullable=False),  # read, search-type, create, push, ...
    sa.Column("outcome", sa.String(2), nullable=False),  # 0 success, 4 minor, 8 serious failure
    sa.Column("agent", sa.String(200)),  # the token's subject, or the worker's name
    sa.Column("content", sa.Text, nullable=False),
)

#: Subscriptions (fhir_bridge/subscriptions): the Subscription resource as the client wrote it,
#: with what the listener needs in columns. ``event_count`` is the last event number assigned
#: (events_since_subscription_start), bumped in the transaction that saved the change.
subscriptions = sa.Table(
    "subscriptions", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),  # topic | criteria
    sa.Column("topic", sa.String(200)),  # topic canonical (topic-based only)
    sa.Column("criteria", sa.Text, nullable=False),  # filters (topic) or the R4 criteria, JSON
    sa.Column("patient_ref", sa.String(64), index=True),  # the Patient id the filters name
    sa.Column("status", sa.String(10), nullable=False),  # requested | active | error | off
    sa.Column("event_count", sa.Integer, nullable=False, default=0),
    sa.Column("version_id", sa.Integer, nullable=False),
    sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ends_at", sa.DateTime(timezone=True)),
    sa.Column("owner", sa.String(200)),  # the subject of the token that created it
    # The client that created it, JSON [issuer, subject, client id or null]; only it sees the
    # subscription (NULL: made before 0006, seen by system tokens only).
    sa.Column("owner_client", sa.Text),
    sa.Column("content", sa.Text, nullable=False),  # the Subscription JSON without meta/status
)

#: The durable event log: one row per event per subscription, numbered 1, 2, 3, ... without
#: gaps. Resources are named with their version, so a late delivery sends what changed then.
subscription_events = sa.Table(
    "subscription_events", metadata,
    sa.Column("subscription_id", sa.String(64), primary_key=True),
    sa.Column("event_number", sa.Integer, primary_key=True),
    sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
    sa.Column("focus_type", sa.String(40), nullable=False),
    sa.Column("focus_id", sa.String(64), nullable=False),
    sa.Column("focus_version", sa.Integer, nullable=False),
    sa.Column("operation", sa.String(10), nullable=False),  # create | update | delete
    sa.Column("context", sa.Text, nullable=False),  # JSON [[type, id, version, operation], ...]
    sa.Column("patient_id", sa.String(64)),  # internal id of the patient concerned
    sa.Column("patient_reference", sa.String(80)),  # Patient/<id>, for the audit
)

#: Delivery state per subscription, claimed by workers with a lease (like the outbox).
subscription_delivery = sa.Table(
    "subscription_delivery", metadata,
    sa.Column("subscription_id", sa.String(64), primary_key=True),
    sa.Column("handshake_done", sa.Boolean, nullable=False, default=False),
    sa.Column("delivered_through", sa.Integer, nullable=False, default=0),  # last event sent
    sa.Column("attempts", sa.Integer, nullable=False, default=0),  # consecutive failures
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("heartbeat_due_at", sa.DateTime(timezone=True)),
    sa.Column("last_sent_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.String(200)),  # "HTTP 503", "ConnectionError": never a body
    sa.Column("claimed_by", sa.String(80)),
    sa.Column("claimed_until", sa.DateTime(timezone=True)),
)

#: Bulk Data exports (fhir_bridge/bulk): one row per kick-off. The job's state lives here, so
#: a restarted server (or another worker process) picks up a job a dead worker left: a worker
#: claims it with a lease (claimed_by/claimed_until) and starts it again from the beginning.
bulk_jobs = sa.Table(
    "bulk_jobs", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    # The client that started it, JSON [issuer, subject, client id]: only it sees the job.
    sa.Column("owner_client", sa.Text, nullable=False),
    sa.Column("status", sa.String(12), nullable=False, index=True),
    # accepted | in-progress | completed | failed | cancelled
    sa.Column("request_url", sa.Text, nullable=False),
    sa.Column("params", sa.Text, nullable=False),  # JSON: level, group, types, since, filters
    sa.Column("transaction_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True)),  # its files are deleted after this
    sa.Column("progress", sa.String(200)),
    sa.Column("output", sa.Text),  # JSON [{type, file, count}, ...] once completed
    sa.Column("errors", sa.Text),  # JSON [message, ...] of a failed job
    sa.Column("claimed_by", sa.String(80)),
    sa.Column("claimed_until", sa.DateTime(timezone=True)),
)

#: The ``jti`` of every client assertion the token endpoint accepted, kept until its ``exp``:
#: the primary key makes a replayed assertion lose, however close the race.
token_assertions = sa.Table(
    "token_assertions", metadata,
    sa.Column("client_id", sa.String(200), primary_key=True),
    sa.Column("jti", sa.String(200), primary_key=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)
