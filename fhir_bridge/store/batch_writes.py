"""The inserts of one save, sent together: one INSERT per table with all its rows, instead of
one per record, resource, history version and outbox row."""

from __future__ import annotations

import sqlalchemy as sa

from . import tables as t


class Pending:
    """One save's pending inserts, sent by :meth:`flush` when its records are written (rows
    in the order they were made, so the outbox keeps its order). An update runs at once, or
    folds into the insert still pending for the same row."""

    def __init__(self) -> None:
        self.inserts: dict[sa.Table, dict[tuple[str, str], dict]] = {t.records: {},
                                                                     t.resources: {}}
        self.history: list[dict] = []
        self.outbox: list[dict] = []

    def write(self, conn, table: sa.Table, key: tuple[str, str], values: dict, exists: bool,
              created: dict | None = None) -> None:
        """Insert (``exists`` False) or update the row of ``table`` keyed (first two primary
        key columns) by ``key``."""
        first, second = (table.c[c.name] for c in list(table.primary_key.columns)[:2])
        waiting = self.inserts[table].get(key)
        if waiting is not None:
            waiting.update(values)
        elif exists:
            conn.execute(table.update().where(first == key[0], second == key[1])
                         .values(**values))
        else:
            self.inserts[table][key] = {first.name: key[0], second.name: key[1],
                                        **(created or {}), **values}

    def flush(self, conn) -> None:
        for table, rows in self.inserts.items():
            if rows:
                conn.execute(table.insert(), list(rows.values()))
            rows.clear()
        for table, rows in ((t.resource_history, self.history), (t.outbox, self.outbox)):
            if rows:
                conn.execute(table.insert(), rows)
            rows.clear()
