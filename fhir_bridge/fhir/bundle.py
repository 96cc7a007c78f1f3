"""Transaction bundles of resources the bridge made."""

from __future__ import annotations

from typing import Any, Iterable


def transaction(resources: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A transaction that writes each resource at its deterministic id (PUT Type/id), so the
    same input always yields the same bundle and re-running it creates nothing new."""
    entries = []
    for resource in resources:
        url = f"{resource['resourceType']}/{resource['id']}"
        entries.append({"resource": resource, "request": {"method": "PUT", "url": url}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def collection(resources: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A collection Bundle: resources side by side, for reading, not for writing."""
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": r} for r in resources]}
