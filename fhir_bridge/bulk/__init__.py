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

__all__ = ["install", "capability_entries"]

#: FHIR Bulk Data Access 2.0 (STU2): the OperationDefinitions of the three kick-offs, and the
#: server CapabilityStatement a server declares conformance to in its ``instantiates``
#: (https://hl7.org/fhir/uv/bulkdata/STU2/, CapabilityStatement-bulk-data.json and
#: OperationDefinition-export / -patient-export / -group-export).
BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
BULK_DATA_SERVER = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
#: rest.operation: system-level ``GET /fhir/$export``.
SYSTEM_EXPORT = {"name": "export", "definition": f"{BULK}/export"}


def capability_entries() -> list[dict[str, Any]]:
    """Group (searched and read, with its export) and Patient's export (joins the entry of the
    search-parameter table)."""
    from ..facade.catalog import capability_entry

    return [capability_entry("Group", "The groups a Group export can name: all-patients, and "
                             "panel-<Practitioner id> for each practitioner on a care team.",
                             operation=[{"name": "export",
                                         "definition": f"{BULK}/group-export"}]),
            {"type": "Patient", "operation": [{"name": "export",
                                               "definition": f"{BULK}/patient-export"}]}]


def install(app: Flask) -> None:
    """Register the Bulk Data endpoints and the Group search source, and announce them in the
    CapabilityStatement."""
    from ..facade import capability, catalog
    from . import api

    app.register_blueprint(api.bp)
    catalog.register(app, "Group", api.searchable_groups)
    app.extensions.setdefault("fhir_capability_resources", []).extend(capability_entries())
    app.extensions.setdefault(capability.OPERATIONS, []).append(SYSTEM_EXPORT)
    app.extensions.setdefault(capability.INSTANTIATES, []).append(BULK_DATA_SERVER)
