"""Audit: every read, search, write, sync and notification leaves an AuditEvent (who, what,
which patient, outcome), stored in the audit_events table and served at /fhir/AuditEvent."""

from .events import AuditEntry, record

__all__ = ["AuditEntry", "record"]
