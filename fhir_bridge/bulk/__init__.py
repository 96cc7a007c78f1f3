"""FHIR Bulk Data Access 2.0 export (docs/fhir-api.md, "Bulk Data export").

- ``kickoff``: reading a kick-off request and checking the token's scopes;
- ``jobs``: the jobs in the database (claimed with a lease, so a restart loses none);
- ``groups``: the Groups a Group export names (all patients, a practitioner's panel);
- ``export``: writing a job's NDJSON files a page at a time; ``worker``: running jobs;
- ``api``: the /fhir endpoints (kick-off, status, cancel, files, Group).
"""

from __future__ import annotations

from typing import Any

from flask import Flask

__all__ = ["install", "CAPABILITY"]

BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
#: The CapabilityStatement.rest.resource entry for Group (its export operation).
CAPABILITY: dict[str, Any] = {
    "type": "Group",
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "operation": [{"name": "export", "definition": f"{BULK}/group-export"}],
}


def install(app: Flask) -> None:
    """Register the Bulk Data endpoints and announce Group in the CapabilityStatement."""
    from . import api

    app.register_blueprint(api.bp)
    app.extensions.setdefault("fhir_capability_resources", []).append(CAPABILITY)
