"""Claimed outbox rows made into push entries: the unsent resources they point at are claimed
too, each resource is read once per batch (``stored``: (type, id) -> resources row, its
content parsed once), and each entry knows its remote id, what it points at and how its first
write goes (:mod:`.first_writes`)."""

from __future__ import annotations

import sqlalchemy as sa

from ..fhir import jsonio
from ..store import outbox
from ..store.batch_reads import resource_rows
from . import first_writes, remote_map
from .bundles import Entry, identity, referenced
from .targets import Target


class Claimed:
    """One batch's reads: the resources rows and their parsed content, each read once."""

    def __init__(self, engine: sa.Engine, target: Target, token: str):
        self.engine, self.target, self.token = engine, target, token
        self.rows: dict = {}  # (type, id) -> resources row
        self.contents: dict = {}  # (type, id) -> parsed content

    def _read(self, conn, keys: set) -> None:
        for key, row in resource_rows(conn, keys - set(self.rows)).items():
            self.rows[key] = row
            self.contents[key] = jsonio.loads(row.content)  # a deletion keeps it

    def with_dependencies(self, rows: list[outbox.OutboxRow],
                          depth: int = 3) -> list[outbox.OutboxRow]:
        """``rows`` and the unsent resources they point at (claimed under the same token), so
        that every reference resolves inside the bundle or on the target."""
        keys = {(r.resource_type, r.resource_id) for r in rows}
        for _ in range(depth):
            with self.engine.connect() as conn:
                self._read(conn, keys)
                wanted = set()
                for key in keys:
                    if key in self.rows and not self.rows[key].deleted:
                        wanted |= referenced(self.contents[key])
                wanted -= keys
                wanted -= set(remote_map.load(conn, self.target.name, wanted))
            added = outbox.claim_resources(self.engine, self.token, wanted,
                                           self.target.lease_seconds)
            if not added:
                break
            rows = rows + added
            keys |= {(r.resource_type, r.resource_id) for r in added}
        return rows

    def entries(self, rows: list[outbox.OutboxRow]) -> list[Entry]:
        """One entry per resource of ``rows`` (its rows' seqs together)."""
        seqs: dict[tuple[str, str], list[int]] = {}
        for row in rows:
            seqs.setdefault((row.resource_type, row.resource_id), []).append(row.seq)
        stored, contents = self.rows, self.contents
        with self.engine.connect() as conn:
            self._read(conn, set(seqs))
            remotes = remote_map.load(conn, self.target.name, set(seqs))
            pointed = {key: referenced(contents[key]) - {key} for key in seqs
                       if not stored[key].deleted}
            every = set().union(*pointed.values()) if pointed else set()
            existing = {key for key, row in resource_rows(conn, every, columns=("deleted",)).items()
                        if not row.deleted}
            # Decided after the batch's last claim: see first_writes.
            placeable = first_writes.by_client_id(conn, self.target.name, {
                key for key in seqs if key not in remotes and not stored[key].deleted})
        entries = []
        for key, row_seqs in seqs.items():
            row = stored[key]
            content = contents[key]  # a deleted resource keeps its last content
            entries.append(Entry(key[0], key[1], row_seqs, bool(row.deleted), content,
                                 None if row.deleted else row.content_hash, remotes.get(key),
                                 identity(content), row.content,
                                 frozenset(pointed.get(key, set()) & existing),
                                 first_writes.client_id(self.target.name, key)
                                 if key in placeable else None))
        return entries
