"""Run a parsed Search against the store: SQL narrows by type, id and patient; the remaining
criteria are checked on each resource; then sort (SQL for _id and _lastUpdated, sorting.py for
values inside the resources), page, _include and _revinclude."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sqlalchemy as sa

from . import match, parameters, repository, sorting
from .match import reference_key, values
from .query import Include, Search
from .repository import Prefilter, StoredResource

MAX_INCLUDE_ROUNDS = 4


@dataclass(frozen=True)
class Viewer:
    """Who is asking: which types they may read, and the one patient they are limited to
    (internal patient id; None for system and user tokens)."""

    can_read: Callable[[str], bool]
    patient_id: str | None = None

    def sees(self, stored: StoredResource) -> bool:
        if not self.can_read(stored.resource_type):
            return False
        if self.patient_id is None:
            return True
        spec = parameters.for_type(stored.resource_type)
        return not (spec and spec.in_patient_compartment) or stored.patient_id == self.patient_id


@dataclass
class SearchResult:
    total: int
    matches: list[StoredResource]
    included: list[StoredResource] = field(default_factory=list)


def run(conn: sa.Connection, search: Search, viewer: Viewer) -> SearchResult:
    pre, remaining = _prefilter(search, viewer)
    in_sql = sorting.in_sql(search.sort)
    if not remaining and in_sql:
        total, matches = repository.page(conn, search.resource_type, pre, search.sort,
                                         search.count, search.offset)
    else:
        found, bodies = [], {}
        sql_sort = search.sort if in_sql else []
        for stored in repository.candidates(conn, search.resource_type, pre, sql_sort):
            resource = stored.resource()
            if all(match.matches(resource, c) for c in remaining):
                found.append(stored)
                bodies[stored.key] = resource
        if not in_sql:
            found = sorting.sort(found, search.sort,
                                 parameters.for_type(search.resource_type).params, bodies)
        total = len(found)
        matches = found[search.offset:search.offset + search.count]
    if search.summary_count:
        return SearchResult(total, [])
    return SearchResult(total, matches, _included(conn, search, matches, viewer))


def _prefilter(search: Search, viewer: Viewer):
    """SQL filters for _id and patient criteria (exact), and the viewer's patient limit."""
    spec = parameters.for_type(search.resource_type)
    pre = Prefilter()
    remaining = []
    for criterion in search.criteria:
        name, modifier = criterion.param.name, criterion.modifier
        if name == "_id" and modifier is None:
            ids = {code for system, code in criterion.values if system is None}
            pre.ids = ids if pre.ids is None else pre.ids & ids
            continue
        if (name in ("patient", "subject") and spec.in_patient_compartment
                and criterion.param.targets == ("Patient",) and modifier is None
                and all(rtype in (None, "Patient") for rtype, _ in criterion.values)):
            named = {rid for _, rid in criterion.values}
            pre.patient_resource_ids = (named if pre.patient_resource_ids is None
                                        else pre.patient_resource_ids & named)
            continue
        remaining.append(criterion)
    if viewer.patient_id is not None and spec.in_patient_compartment:
        mine = {viewer.patient_id}
        pre.patient_ids = mine if pre.patient_ids is None else pre.patient_ids & mine
    return pre, remaining


def _targets(resource: dict, include: Include) -> set[tuple[str, str]]:
    out = set()
    for path in include.param.paths:
        for value in values(resource, path):
            key = reference_key(value.get("reference", "")) if isinstance(value, dict) else None
            if key is None or key[0] is None:
                continue
            if include.target_type and key[0] != include.target_type:
                continue
            if include.param.targets and key[0] not in include.param.targets:
                continue
            out.add(key)
    return out


def _included(conn: sa.Connection, search: Search, matches: list[StoredResource],
              viewer: Viewer) -> list[StoredResource]:
    if not matches or not (search.includes or search.revincludes):
        return []
    seen = {m.key for m in matches}
    included: list[StoredResource] = []
    frontier = list(matches)
    for round_number in range(MAX_INCLUDE_ROUNDS):
        wanted: set[tuple[str, str]] = set()
        for stored in frontier:
            resource = stored.resource()
            for include in search.includes:
                if include.source_type == stored.resource_type and (
                        round_number == 0 or include.iterate):
                    wanted |= _targets(resource, include)
        new = [s for s in repository.by_keys(conn, wanted - seen) if viewer.sees(s)]
        for revinclude in search.revincludes:
            if round_number == 0 or revinclude.iterate:
                new.extend(s for s in _referencing(conn, revinclude, frontier, viewer)
                           if s.key not in seen)
        fresh = []
        for stored in sorted(new, key=lambda s: s.key):
            if stored.key not in seen:
                seen.add(stored.key)
                fresh.append(stored)
        included.extend(fresh)
        frontier = fresh
        if not frontier:
            break
    return included


def _referencing(conn: sa.Connection, revinclude: Include, frontier: list[StoredResource],
                 viewer: Viewer) -> list[StoredResource]:
    """Resources of revinclude.source_type whose parameter points at a frontier resource."""
    pointed = {s.key for s in frontier
               if (not revinclude.param.targets or s.resource_type in revinclude.param.targets)
               and (not revinclude.target_type or s.resource_type == revinclude.target_type)}
    if not pointed:
        return []
    spec = parameters.for_type(revinclude.source_type)
    pre = Prefilter()
    owners = {s.patient_id for s in frontier if s.key in pointed}
    if spec.in_patient_compartment and None not in owners:
        pre.patient_ids = owners
    if viewer.patient_id is not None and spec.in_patient_compartment:
        pre.patient_ids = (pre.patient_ids or {viewer.patient_id}) & {viewer.patient_id}
    out = []
    for stored in repository.candidates(conn, revinclude.source_type, pre, []):
        if viewer.sees(stored) and _targets(stored.resource(), revinclude) & pointed:
            out.append(stored)
    return out
