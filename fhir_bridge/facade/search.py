"""Run a parsed Search against the store: chains and _has become criteria on ids (each a
search of its own, run here); SQL narrows by type, id, patient and the search-parameter index
(indexing.py); the criteria the index cannot decide are checked on each candidate; then sort
(SQL for _id and _lastUpdated, sorting.py for values inside the resources), page, _include and
_revinclude.

The same engine searches a list of resources (``Listed``: the catalog types, which the
bridge builds rather than stores): every criterion is checked on each resource, then the same
sort, paging and counting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import sqlalchemy as sa

from ..errors import BadRequest, Forbidden, Issue
from . import indexing, match, parameters, repository, sorting
from .match import Criterion, reference_key, values
from .query import Include, Search
from .repository import Prefilter, StoredResource

MAX_INCLUDE_ROUNDS = 4
MAX_LINKED = 5_000  # resources a chain or _has may match before it must be narrowed


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


@dataclass(frozen=True)
class Listed:
    """A resource of a listed source, as the engine handles a stored one (key, id,
    last_updated, resource())."""

    body: dict

    @property
    def resource_type(self) -> str:
        return self.body["resourceType"]

    @property
    def id(self) -> str:
        return self.body["id"]

    @property
    def key(self) -> tuple[str, str]:
        return self.resource_type, self.id

    @property
    def last_updated(self):
        bounds = match.date_range((self.body.get("meta") or {}).get("lastUpdated"))
        return bounds[0] if bounds else None

    def resource(self) -> dict:
        return self.body


def run(source: sa.Connection | Iterable[dict], search: Search,
        viewer: Viewer | None = None) -> SearchResult:
    """Search the store (``source`` a connection; ``viewer`` says who asks) or a list of
    resources of the searched type (a catalog type, whose spec the Search was parsed by)."""
    if not isinstance(source, sa.Connection):
        ordered = sorted((Listed(r) for r in source), key=lambda item: item.id)
        return _selected(ordered, list(search.criteria), search, False)
    conn = source
    linked = _linked_criteria(conn, search, viewer)
    if linked is None:  # a chain or _has that matches nothing
        return SearchResult(0, [])
    pre, remaining = _prefilter(search, viewer, linked)
    in_sql = sorting.in_sql(search.sort)
    if not remaining and in_sql:
        total, matches = repository.page(conn, search.resource_type, pre, search.sort,
                                         search.count, search.offset)
        result = SearchResult(total, matches)
    else:
        sql_sort = search.sort if in_sql else []
        result = _selected(repository.candidates(conn, search.resource_type, pre, sql_sort),
                           remaining, search, in_sql)
    if search.summary_count:
        return SearchResult(result.total, [])
    result.included = _included(conn, search, result.matches, viewer)
    return result


def _selected(candidates: Iterable, remaining: list[Criterion], search: Search,
              sorted_already: bool) -> SearchResult:
    """The candidates every remaining criterion matches, sorted (unless SQL sorted them
    already) and paged."""
    found, bodies = [], {}
    for candidate in candidates:
        resource = candidate.resource()
        if all(match.matches(resource, c) for c in remaining):
            found.append(candidate)
            bodies[candidate.key] = resource
    if not sorted_already and search.sort:
        spec = parameters.for_type(search.resource_type) or parameters.catalog_for_type(
            search.resource_type)
        found = sorting.sort(found, search.sort, spec.params, bodies)
    page = found[search.offset:search.offset + search.count]
    return SearchResult(len(found), [] if search.summary_count else page)


def _linked_keys(conn: sa.Connection, resource_type: str, criterion: Criterion,
                 viewer: Viewer, name: str) -> list[StoredResource]:
    """The resources a chain's or _has's inner criterion matches (as the viewer sees them)."""
    if not viewer.can_read(resource_type):
        raise Forbidden(f"{name} reads {resource_type}, which the token does not cover")
    inner = run(conn, Search(resource_type, [criterion], count=MAX_LINKED + 1), viewer)
    if inner.total > MAX_LINKED:
        raise BadRequest("the search cannot be run as written", [Issue(
            name, f"matches more than {MAX_LINKED} {resource_type} resources; narrow it",
            "too-costly")])
    return inner.matches


def _linked_criteria(conn: sa.Connection, search: Search,
                     viewer: Viewer) -> list[Criterion] | None:
    """Chains (``patient.identifier=``) and _has as criteria on references and ids."""
    out = []
    for chain in search.chains:
        found = _linked_keys(conn, chain.target_type, chain.inner, viewer, chain.name)
        if not found:
            return None
        out.append(Criterion(chain.param, None, tuple((s.resource_type, s.id) for s in found)))
    for has in search.has:
        found = _linked_keys(conn, has.source_type, has.inner, viewer, has.name)
        via = Include(has.source_type, has.param, None)
        ids = sorted({rid for s in found for rtype, rid in reference_targets(s.resource(), via)
                      if rtype == search.resource_type})
        if not ids:
            return None
        out.append(Criterion(parameters.for_type(search.resource_type).params["_id"], None,
                             tuple((None, rid) for rid in ids)))
    return out


def _prefilter(search: Search, viewer: Viewer, linked: list[Criterion] = ()):
    """SQL filters: _id, patient criteria and the compartment (exact), the viewer's patient
    limit, and index terms for the criteria the search-parameter index can narrow."""
    spec = parameters.for_type(search.resource_type)
    pre = Prefilter()
    remaining = []
    if search.compartment is not None:
        pre.patient_resource_ids = {search.compartment}
    for criterion in [*search.criteria, *linked]:
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
        term = indexing.narrowing(criterion) if search.resource_type != "AuditEvent" else None
        if term is not None:
            pre.indexed.append(term)
            if term.exact:
                continue
        remaining.append(criterion)
    if viewer.patient_id is not None and spec.in_patient_compartment:
        mine = {viewer.patient_id}
        pre.patient_ids = mine if pre.patient_ids is None else pre.patient_ids & mine
    return pre, remaining


def reference_targets(resource: dict, include: Include) -> set[tuple[str, str]]:
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
                    wanted |= reference_targets(resource, include)
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
    if revinclude.source_type != "AuditEvent":
        pre.indexed.append(indexing.references_to(revinclude.param.name, pointed))
    owners = {s.patient_id for s in frontier if s.key in pointed}
    if spec.in_patient_compartment and None not in owners:
        pre.patient_ids = owners
    if viewer.patient_id is not None and spec.in_patient_compartment:
        pre.patient_ids = (pre.patient_ids or {viewer.patient_id}) & {viewer.patient_id}
    out = []
    for stored in repository.candidates(conn, revinclude.source_type, pre, []):
        if viewer.sees(stored) and reference_targets(stored.resource(), revinclude) & pointed:
            out.append(stored)
    return out
