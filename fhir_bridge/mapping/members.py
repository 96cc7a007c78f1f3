"""Which of the sender's resources each child resource of a record was made of (a panel's
items and total): the pairing that lets mapping/foreign.py keep each one as sent.

A child is paired with the sender's resource it was read from by what names it: a coding or the
text of its ``code`` (an item's LOINC or local code, the total's code) or, for resources without
a code, of their ``description`` (a goal). The sender's order of the references does not
matter (US Core's PHQ-9 example lists the total before item 10).
"""

from __future__ import annotations

from typing import Any, Callable

from . import paths
from .engine import Mapping

#: the elements that name a child resource, in the order they are tried
NAMING = ("code", "description")


def sent_members(mapping: Mapping, original: dict[str, Any], children: list[dict[str, Any]],
                 resolve: Callable[[str], dict | None] | None
                 ) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(the reference as sent, the sender's resource, the child rendered of it) for each
    reference of ``original`` where the mapping's children are (``hasMember``, ``goal``) that
    ``resolve`` can read and a child pairs with; each such reference of ``original`` is moved
    to the child's id."""
    if resolve is None:
        return []
    free = list(children)
    out = []
    for where in dict.fromkeys(spec.fhir for spec in mapping.children
                               if spec.fhir and spec.direction != "forward"):
        for ref in paths.get(original, where) or []:
            reference = ref.get("reference") if isinstance(ref, dict) else None
            sent = resolve(reference) if isinstance(reference, str) else None
            child = _counterpart(sent, free) if isinstance(sent, dict) else None
            if child is None:
                continue
            free.remove(child)
            ref["reference"] = f"{child['resourceType']}/{child['id']}"
            out.append((reference, sent, child))
    return out


def _counterpart(sent: dict, rendered: list[dict]) -> dict | None:
    for element in NAMING:
        names = _names(sent.get(element))
        if not names:
            continue
        for child in rendered:
            if child["resourceType"] == sent.get("resourceType") and \
                    names & _names(child.get(element)):
                return child
    return None


def _names(concept: Any) -> set[tuple[str, str]]:
    """(system, code) of each coding, and ("text", its text)."""
    if not isinstance(concept, dict):
        return set()
    names = {(str(c.get("system")), str(c.get("code"))) for c in concept.get("coding") or []
             if isinstance(c, dict) and c.get("code")}
    if isinstance(concept.get("text"), str):
        names.add(("text", concept["text"]))
    return names
