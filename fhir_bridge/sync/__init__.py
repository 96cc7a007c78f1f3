"""Sync with external FHIR servers: the HTTP client, its auth, and the push/pull machinery."""
