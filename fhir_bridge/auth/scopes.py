"""SMART on FHIR clinical scopes, v1 and v2 syntax, parsed into one form.

A scope is ``<context>/<resource type>.<permissions>``: context ``patient``, ``user`` or
``system``; resource type a FHIR type name or ``*``; permissions either v2 letters from
``cruds`` in that order (``rs``, ``cud``, ``cruds``) or v1 ``read`` (= ``rs``), ``write``
(= ``cud``) or ``*`` (= ``cruds``).

Scopes that are not clinical scopes (``openid``, ``fhirUser``, ``launch``, ``launch/patient``,
``offline_access``, ...) are ignored. A clinical scope that is malformed raises ``ScopeError``
(the token that carries it is refused). A v2 scope restricted by query parameters
(``patient/Observation.rs?category=...``) is understood but not supported: it grants nothing,
which is never more than it asks for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTEXTS = ("patient", "user", "system")
INTERACTIONS = "cruds"  # create, read, update, delete, search: the v2 order
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}

_CLINICAL = re.compile(r"^(patient|user|system)/")
_SCOPE = re.compile(r"^(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]{0,63})"
                    r"\.(?P<permissions>[a-z*]+)(?P<query>\?.*)?$")
_V2 = re.compile(r"^c?r?u?d?s?$")


class ScopeError(ValueError):
    """A clinical scope that does not follow the SMART grammar."""


@dataclass(frozen=True)
class Scope:
    """One clinical scope: in ``context``, on ``resource_type`` (or ``*``), these interactions."""

    context: str
    resource_type: str
    interactions: frozenset[str]

    def covers(self, resource_type: str, interaction: str) -> bool:
        return (self.resource_type in ("*", resource_type)
                and interaction in self.interactions)

    def __str__(self) -> str:
        letters = "".join(i for i in INTERACTIONS if i in self.interactions)
        return f"{self.context}/{self.resource_type}.{letters}"


def parse_scope(text: str) -> Scope | None:
    """One scope, or None for a scope that grants no clinical access here (see module doc)."""
    if not _CLINICAL.match(text):
        return None
    match = _SCOPE.match(text)
    if match is None:
        raise ScopeError(f"malformed SMART scope {text!r}")
    permissions = match["permissions"]
    if permissions in V1_PERMISSIONS:
        if match["query"] is not None:
            raise ScopeError(f"a v1 scope cannot have query parameters: {text!r}")
        letters = V1_PERMISSIONS[permissions]
    elif permissions and _V2.match(permissions):
        letters = permissions
    else:
        raise ScopeError(f"malformed SMART scope {text!r}: permissions must be read, write, * "
                         "or letters of cruds in that order")
    if match["query"] is not None:
        return None  # query-restricted v2 scopes: not supported, grant nothing
    return Scope(match["context"], match["type"], frozenset(letters))


def parse_scopes(value: str | list | tuple | None) -> tuple[Scope, ...]:
    """The clinical scopes of a token's ``scope`` claim (space-separated, or a list)."""
    if value is None:
        return ()
    if isinstance(value, str):
        items = value.split()
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        raise ScopeError("the scope claim must be a string or a list of strings")
    scopes = []
    for item in items:
        scope = parse_scope(item)
        if scope is not None and scope not in scopes:
            scopes.append(scope)
    return tuple(scopes)
