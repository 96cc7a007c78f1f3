"""What one save reads about its batch, read once per concept (or resource type) with IN lists,
not once per record or resource: an imported document of 24 records and 50 resources took
about 440 statements that way, and about 60 with these reads and store/batch_writes.py
(bench/README.md, `scale_bench.py`).

Every function returns a dict the save keeps up to date as it writes, so a record or resource
the batch names twice is seen, the second time, as the first time left it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import sqlalchemy as sa

from . import tables as t

#: Ids per IN list: well under SQLite's 32,766 bound parameters and PostgreSQL's 65,535.
CHUNK = 500


@dataclass(frozen=True)
class RecordRow:
    version: int
    data: dict
    updated_at: object


@dataclass(frozen=True)
class ResourceRow:
    """What a save needs of a stored resource: its owner, version and content (for the
    ``previous`` of an event)."""

    concept: str
    record_id: str
    version_id: int
    content_hash: str
    content: str | None
    deleted: bool
    last_updated: object


@dataclass
class Seen:
    """The resources a save has read or written so far: ``owned`` by record ((concept, id) ->
    {(type, id): row}) and ``resources`` by (type, id)."""

    owned: dict
    resources: dict


def _grouped(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for group, key in keys:
        out.setdefault(group, set()).add(key)
    return {group: sorted(ids) for group, ids in sorted(out.items())}


def _chunks(ids: list[str]):
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def records_for_update(conn: sa.Connection,
                       keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], RecordRow]:
    """The stored (concept, id) of ``keys``, locked for the transaction (PostgreSQL
    ``FOR UPDATE``, in concept and id order; SQLite's write lock covers it)."""
    r = t.records
    found: dict[tuple[str, str], RecordRow] = {}
    for concept, ids in _grouped(keys).items():
        for chunk in _chunks(ids):
            for row in conn.execute(sa.select(r.c.id, r.c.version, r.c.data, r.c.updated_at)
                                    .where(r.c.concept == concept, r.c.id.in_(chunk))
                                    .order_by(r.c.id).with_for_update()):
                found[(concept, row.id)] = RecordRow(row.version, row.data, row.updated_at)
    return found


def patients_of(conn: sa.Connection,
                keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    """(concept, id) -> patient id of the stored records among ``keys`` (a missing one is
    left out)."""
    r = t.records
    found: dict[tuple[str, str], str | None] = {}
    for concept, ids in _grouped(keys).items():
        for chunk in _chunks(ids):
            for row in conn.execute(sa.select(r.c.id, r.c.patient_id).where(
                    r.c.concept == concept, r.c.id.in_(chunk))):
                found[(concept, row.id)] = row.patient_id
    return found


def _resource_row(row) -> ResourceRow:
    return ResourceRow(row.concept, row.record_id, row.version_id, row.content_hash,
                       row.content, row.deleted, row.last_updated)


_RESOURCE_COLUMNS = (t.resources.c.resource_type, t.resources.c.id, t.resources.c.concept,
                     t.resources.c.record_id, t.resources.c.version_id,
                     t.resources.c.content_hash, t.resources.c.content, t.resources.c.deleted,
                     t.resources.c.last_updated)


def owned_resources(conn: sa.Connection, records: Iterable[tuple[str, str]]
                    ) -> dict[tuple[str, str], dict[tuple[str, str], ResourceRow]]:
    """(concept, record id) -> {(type, id): row} of the resources each record rendered
    (deleted ones included), for every record of ``records`` (none: an empty dict)."""
    res = t.resources
    found: dict[tuple[str, str], dict[tuple[str, str], ResourceRow]] = {
        key: {} for key in records}
    for concept, ids in _grouped(found).items():
        for chunk in _chunks(ids):
            for row in conn.execute(sa.select(*_RESOURCE_COLUMNS).where(
                    res.c.concept == concept, res.c.record_id.in_(chunk))):
                found[(concept, row.record_id)][(row.resource_type, row.id)] = \
                    _resource_row(row)
    return found


def resource_rows(conn: sa.Connection, keys: Iterable[tuple[str, str]],
                  columns: tuple[str, ...] | None = None) -> dict[tuple[str, str], sa.Row]:
    """The stored rows of the resources among ``keys`` ((type, id)), whoever owns them: all
    columns, or ``resource_type``, ``id`` and the ones named; one query per type and
    CHUNK ids."""
    res = t.resources
    selected = [res.c.resource_type, res.c.id, *(res.c[c] for c in columns)] if columns \
        else [res]
    found: dict[tuple[str, str], sa.Row] = {}
    for resource_type, ids in _grouped(keys).items():
        for chunk in _chunks(ids):
            for row in conn.execute(sa.select(*selected).where(
                    res.c.resource_type == resource_type, res.c.id.in_(chunk))):
                found[(resource_type, row.id)] = row
    return found


def resources_by_key(conn: sa.Connection, keys: Iterable[tuple[str, str]]
                     ) -> dict[tuple[str, str], ResourceRow]:
    """The stored resources among ``keys`` ((type, id)), whoever owns them."""
    return {key: _resource_row(row) for key, row in resource_rows(
        conn, keys, tuple(c.name for c in _RESOURCE_COLUMNS[2:])).items()}
