"""Storage: internal records, the FHIR resources mapped from them, their history and the
outbox, all written in one transaction per change (SQLAlchemy; SQLite or PostgreSQL)."""
