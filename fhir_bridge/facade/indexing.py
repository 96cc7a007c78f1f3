"""The search-parameter index (table ``search_index``): what each current resource holds for
its token, reference and string search parameters, so that SQL can narrow a search to the
resources that can match before any body is read. Search cost then follows the result, not
the store.

- Written by :func:`listener` (a RecordStore listener) inside the transaction that saves the
  resource, rewritten on every new version and removed on deletion; :func:`reindex` for
  writers outside the RecordStore (sync's Provenance) and for the migration's backfill.
- Read by :func:`narrowing`: a criterion becomes an :class:`IndexTerm` that repository.py
  turns into ``id IN (SELECT resource_id FROM search_index ...)``. A term is *exact* when the
  index answers the criterion by itself; otherwise the criterion is still checked on each
  candidate (the index only narrows, it never decides what it cannot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import sqlalchemy as sa

from ..fhir import jsonio
from ..store import tables as t
from . import parameters
from .match import Criterion, codings, fold, param_values, reference_key, strings

LENGTH = t.INDEX_VALUE_LENGTH
NOT_INDEXED = frozenset({"_id"})  # a column of its own
_SI = t.search_index


@dataclass(frozen=True)
class Alternative:
    """One OR-ed value: ``system`` None = any, "" = none; ``value`` None = any; ``prefix``:
    value is a prefix of the stored (folded) value."""

    system: str | None
    value: str | None
    prefix: bool = False


@dataclass(frozen=True)
class IndexTerm:
    param: str
    alternatives: tuple[Alternative, ...]
    exact: bool


def _cut(text: str | None) -> str | None:
    return None if text is None else text[:LENGTH]


def entries(resource: dict) -> set[tuple[str, str | None, str | None]]:
    """(param, system, value) of one resource, for every indexed parameter of its type."""
    spec = parameters.for_type(resource.get("resourceType", ""))
    out: set[tuple[str, str | None, str | None]] = set()
    if spec is None:
        return out
    for name, param in spec.params.items():
        if name in NOT_INDEXED:
            continue
        for value in param_values(resource, param):
            if param.type == "token":
                out.update((name, _cut(system), _cut(code))
                           for system, code, _ in codings(value) if code is not None)
            elif param.type == "reference" and isinstance(value, dict):
                key = reference_key(value.get("reference", ""))
                if key is not None:
                    out.add((name, key[0], key[1]))
            elif param.type == "string":
                out.update((name, None, _cut(fold(text))) for text in strings(value))
            elif param.type == "uri" and isinstance(value, str):
                out.update((name, None, _cut(u)) for u in (value, value.split("|", 1)[0]))
    return out


def reindex(conn: sa.Connection, resource_type: str, resource_id: str,
            resource: dict | None) -> None:
    """Replace what the index holds for one resource (None: it was deleted)."""
    conn.execute(_SI.delete().where(_SI.c.resource_type == resource_type,
                                    _SI.c.resource_id == resource_id))
    if resource is not None:
        rows = [dict(resource_type=resource_type, resource_id=resource_id, param=param,
                     system=system, value=value)
                for param, system, value in sorted(entries(resource), key=str)]
        if rows:
            conn.execute(_SI.insert(), rows)


def listener(conn: sa.Connection, events) -> None:
    """RecordStore listener: index every resource the saving transaction changed (its last
    version in the transaction), with one DELETE per resource type and one INSERT in all."""
    last = {(event.resource_type, event.id): event.resource for event in events}
    by_type: dict[str, list[str]] = {}
    for resource_type, resource_id in last:
        by_type.setdefault(resource_type, []).append(resource_id)
    for resource_type, ids in sorted(by_type.items()):
        for start in range(0, len(ids), 500):
            conn.execute(_SI.delete().where(_SI.c.resource_type == resource_type,
                                            _SI.c.resource_id.in_(ids[start:start + 500])))
    rows = [dict(resource_type=resource_type, resource_id=resource_id, param=param,
                 system=system, value=value)
            for (resource_type, resource_id), resource in last.items() if resource is not None
            for param, system, value in sorted(entries(resource), key=str)]
    if rows:
        conn.execute(_SI.insert(), rows)


def backfill(conn: sa.Connection, batch: int = 500) -> int:
    """Index every current resource (the migration that adds the table runs it)."""
    r = t.resources
    done, after = 0, ("", "")
    while True:
        rows = conn.execute(
            sa.select(r.c.resource_type, r.c.id, r.c.content)
            .where(r.c.deleted.is_(False),
                   sa.or_(r.c.resource_type > after[0],
                          sa.and_(r.c.resource_type == after[0], r.c.id > after[1])))
            .order_by(r.c.resource_type, r.c.id).limit(batch)).all()
        if not rows:
            return done
        for row in rows:
            reindex(conn, row.resource_type, row.id, jsonio.loads(row.content))
        done += len(rows)
        after = (rows[-1].resource_type, rows[-1].id)


# -- narrowing a search ------------------------------------------------------------------------

def _upper(prefix: str) -> str | None:
    """The smallest string after every string that starts with prefix."""
    if not prefix or ord(prefix[-1]) >= 0x10FFFF:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def narrowing(criterion: Criterion) -> IndexTerm | None:
    """The index term for a criterion, or None when the index cannot narrow it."""
    param, modifier, name = criterion.param, criterion.modifier, criterion.param.name
    if name in NOT_INDEXED:
        return None
    if param.type == "token" and modifier is None:
        alternatives = tuple(Alternative(_cut(system), _cut(code))
                             for system, code in criterion.values)
        exact = all(code is not None and len(system or "") <= LENGTH and len(code) <= LENGTH
                    for system, code in criterion.values)
        return IndexTerm(name, alternatives, exact)
    if param.type == "reference" and modifier is None:
        return IndexTerm(name, tuple(Alternative(rtype, rid) for rtype, rid in criterion.values),
                         True)
    if param.type == "uri":
        return IndexTerm(name, tuple(Alternative(None, _cut(u)) for u in criterion.values),
                         all(len(u) <= LENGTH for u in criterion.values))
    if param.type == "string" and modifier in (None, "exact"):
        texts = [text if modifier is None else fold(text) for text in criterion.values]
        if any(_upper(_cut(text)) is None for text in texts):
            return None
        exact = modifier is None and all(len(text) <= LENGTH for text in texts)
        return IndexTerm(name, tuple(Alternative(None, _cut(text), prefix=modifier is None)
                                     for text in texts), exact)
    return None


def references_to(param: str, keys: Iterable[tuple[str, str]]) -> IndexTerm:
    """Resources whose reference parameter points at one of these (type, id)."""
    return IndexTerm(param, tuple(Alternative(rtype, rid) for rtype, rid in sorted(keys)), True)


def holds(resource_type: str, term: IndexTerm, id_column, few: bool):
    """A WHERE clause: the term holds for the row whose id is ``id_column``. When the rest of
    the query already narrows to ``few`` rows (a patient's, or named ids), each is probed in
    the index (EXISTS on resource_type, resource_id, param, value); otherwise the index gives
    the ids that match (IN), whatever the size of the type."""
    if few:
        return sa.exists(matching_ids(resource_type, term).where(
            _SI.c.resource_id == id_column))
    return id_column.in_(matching_ids(resource_type, term))


def matching_ids(resource_type: str, term: IndexTerm):
    """SELECT resource_id of the resources of a type the term holds for."""
    branches = []
    for alt in term.alternatives:
        conditions = []
        if alt.system == "":
            conditions.append(_SI.c.system.is_(None))
        elif alt.system is not None:
            conditions.append(_SI.c.system == alt.system)
        if alt.value is not None and alt.prefix:
            conditions += [_SI.c.value >= alt.value, _SI.c.value < _upper(alt.value)]
        elif alt.value is not None:
            conditions.append(_SI.c.value == alt.value)
        branches.append(sa.and_(sa.true(), *conditions))
    return sa.select(_SI.c.resource_id).where(
        _SI.c.resource_type == resource_type, _SI.c.param == term.param, sa.or_(*branches))
