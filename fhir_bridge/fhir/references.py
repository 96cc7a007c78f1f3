"""References inside FHIR resources: find them, split them, rewrite them (sync uses these to
move between local ids, remote ids, urn:uuid entries and conditional references)."""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator

RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


def split(reference: str | None) -> tuple[str, str] | None:
    """'Patient/pat-1' -> ('Patient', 'pat-1'); anything else (absolute, urn, conditional)
    -> None."""
    match = RELATIVE.match(reference or "")
    return (match.group(1), match.group(2)) if match else None


def references(node: Any, skip: tuple[str, ...] = ()) -> Iterator[str]:
    """Every Reference.reference string in a resource, except under the keys in ``skip``."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node["reference"]
        for key, value in node.items():
            if key not in skip:
                yield from references(value, skip)
    elif isinstance(node, list):
        for value in node:
            yield from references(value, skip)


def rewrite(node: Any, change: Callable[[str], str]) -> None:
    """Replace every Reference.reference in place with ``change(reference)``."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            node["reference"] = change(node["reference"])
        for value in node.values():
            rewrite(value, change)
    elif isinstance(node, list):
        for value in node:
            rewrite(value, change)
