"""Transaction bundles of resources the bridge made."""

from __future__ import annotations

import uuid
from typing import Any, Iterable

#: urn:uuid fullUrls of a bundle without a base are name-based (uuid5), so the same resource
#: always gets the same one.
_FULL_URL_NAMESPACE = uuid.UUID("9a4d1c0e-57a2-4c1b-8e55-0f6b6f0e4b21")


def full_url(resource: dict[str, Any], base: str | None = None) -> str:
    """Where a bundle entry's resource lives: ``<base>/<type>/<id>`` (its canonical URL on the
    server that serves it), or without a base a ``urn:uuid`` derived from type and id."""
    key = f"{resource['resourceType']}/{resource['id']}"
    if base:
        return f"{base.rstrip('/')}/{key}"
    return f"urn:uuid:{uuid.uuid5(_FULL_URL_NAMESPACE, key)}"


def transaction(resources: Iterable[dict[str, Any]], base: str | None = None) -> dict[str, Any]:
    """A transaction that writes each resource at its deterministic id (PUT Type/id), so the
    same input always yields the same bundle and re-running it creates nothing new. Every entry
    has a fullUrl (R4 requires one except for POST), so the relative references between the
    resources resolve inside the bundle."""
    entries = []
    for resource in resources:
        url = f"{resource['resourceType']}/{resource['id']}"
        entries.append({"fullUrl": full_url(resource, base), "resource": resource,
                        "request": {"method": "PUT", "url": url}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def collection(resources: Iterable[dict[str, Any]], base: str | None = None) -> dict[str, Any]:
    """A collection Bundle: resources side by side, for reading, not for writing."""
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": full_url(r, base), "resource": r} for r in resources]}
