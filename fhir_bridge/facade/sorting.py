"""``_sort`` (FHIR R4 search.html#sort) on any declared date, token or string parameter, plus
``_id`` and ``_lastUpdated``.

``_id`` and ``_lastUpdated`` are columns: SQL sorts and pages them (repository.page). Every
other parameter's value lives only in the resource JSON, so those sorts run here, over the
candidates SQL has already narrowed (type, id, patient) and the criteria have kept: each
resource is parsed once, its key computed, and the list sorted in memory. The cost grows with
the number of matching resources (not the page size) until a search index gives these values
columns of their own.

Keys, as the FHIR rules say for repeating and ranged values: ascending uses the lowest value a
resource has, descending the highest; a date's range counts by its low end ascending and its
high end descending (a Period from its start / to its end); a token sorts by code, then
system; a string by its case- and accent-folded text. Resources without a value come last in
either direction. Equal keys keep the order of the next key, and finally of ``_id``.
"""

from __future__ import annotations

from typing import Any, Sequence

from .match import codings, strings, value_range, fold, param_values
from .parameters import SearchParameter
from .repository import StoredResource

SQL_KEYS = ("_id", "_lastUpdated")
SORTABLE_TYPES = ("date", "token", "string")


def in_sql(sort: Sequence[tuple[str, bool]]) -> bool:
    return all(key in SQL_KEYS for key, _ in sort)


def _values(resource: dict, param: SearchParameter, descending: bool) -> list[Any]:
    found = list(param_values(resource, param))
    if param.type == "date":
        ranges = [r for r in map(value_range, found) if r is not None]
        return [hi if descending else lo for lo, hi in ranges]
    if param.type == "token":
        return [(code, system or "") for value in found
                for system, code, _ in codings(value) if code]
    return [fold(text) for value in found for text in strings(value) if text]


def _key(stored: StoredResource, resource: dict | None, name: str,
         param: SearchParameter | None, descending: bool) -> Any:
    if name == "_id":
        return stored.id
    if name == "_lastUpdated":
        return stored.last_updated
    values = _values(resource, param, descending)
    if not values:
        return None
    return max(values) if descending else min(values)


def sort(found: list[StoredResource], keys: Sequence[tuple[str, bool]],
         params: dict[str, SearchParameter],
         bodies: dict[tuple[str, str], dict] | None = None) -> list[StoredResource]:
    """``found`` (in _id order) sorted by ``keys``: stable sorts from the last key to the
    first, each putting resources that lack the value after those that have it. ``bodies``
    are the parsed resources when the caller has them already."""
    bodies = bodies if bodies is not None else {s.key: s.resource() for s in found}
    ordered = list(found)
    for name, descending in reversed(keys):
        param = params.get(name)
        keyed = [(s, _key(s, bodies[s.key], name, param, descending)) for s in ordered]
        present = [pair for pair in keyed if pair[1] is not None]
        present.sort(key=lambda pair: pair[1], reverse=descending)
        ordered = [s for s, _ in present] + [s for s, value in keyed if value is None]
    return ordered
