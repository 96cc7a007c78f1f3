"""Conditional writes: ``If-None-Exist`` on a create and ``PUT [type]?identifier=...``.

The condition is an ordinary search (query.py, search.py) run as the caller sees the store.
It is run once to plan the write and again inside the saving transaction, under a lock per
condition (SQLite: the write lock every save holds; PostgreSQL: a transaction-scoped advisory
lock on the type and query), so two concurrent conditional creates of the same thing make one
resource: the second sees the first one's and answers with it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

import sqlalchemy as sa

from ..errors import BadRequest, Conflict, Issue, PreconditionFailed
from .query import parse_search
from .repository import StoredResource
from .search import Viewer, run

#: Parameters that shape an answer, not the set of matches: not conditions.
NOT_CONDITIONS = ("_count", "_offset", "_sort", "_summary", "_elements", "_include",
                  "_revinclude", "_format", "_pretty", "_total")


@dataclass(frozen=True)
class Condition:
    resource_type: str
    query: str  # as the client wrote it
    header: str  # where it came from: If-None-Exist, or (query) of a conditional update
    matched: tuple[str, ...]  # ids found when the write was planned


class Matched(Exception):
    """Raised in the saving transaction when a conditional create finds its match there."""

    def __init__(self, stored: StoredResource):
        super().__init__(f"{stored.resource_type}/{stored.id}")
        self.stored = stored


def _args(resource_type: str, query: str, where: str) -> list[tuple[str, str]]:
    args = parse_qsl(query.removeprefix("?").split("?", 1)[-1], keep_blank_values=True)
    if not args or any(name in NOT_CONDITIONS for name, _ in args):
        raise BadRequest(f"{where} must be search criteria (like identifier=system|value)",
                         [Issue(where, "needs at least one search parameter, and no "
                                       f"{', '.join(NOT_CONDITIONS)}")])
    return args


def matches(conn: sa.Connection, resource_type: str, query: str, where: str,
            viewer: Viewer) -> list[StoredResource]:
    """Every resource of the type that meets the condition, as ``viewer`` sees them (at most
    two: more than one is an error either way)."""
    search = parse_search(resource_type, _args(resource_type, query, where) + [("_count", "2")])
    return list(run(conn, search, viewer).matches)


def plan(conn: sa.Connection, resource_type: str, query: str, where: str,
         viewer: Viewer) -> tuple[Condition, StoredResource | None]:
    """The condition and its one match (None for no match); 412 for several."""
    found = matches(conn, resource_type, query, where, viewer)
    if len(found) > 1:
        raise PreconditionFailed(f"{where} matches more than one {resource_type}",
                                 [Issue(where, "matches several resources; make it "
                                               "selective (an identifier)", "multiple-matches")])
    return Condition(resource_type, query, where, tuple(s.id for s in found)), \
        (found[0] if found else None)


def recheck(conn: sa.Connection, condition: Condition, viewer: Viewer,
            create: bool) -> None:
    """Inside the saving transaction: the condition still finds what it found. A create that
    now finds one match raises Matched (the caller answers with it); any other change is a
    lost race (409)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                     {"key": f"conditional {condition.resource_type}?{condition.query}"})
    found = matches(conn, condition.resource_type, condition.query, condition.header, viewer)
    now = tuple(s.id for s in found)
    if now == condition.matched:
        return
    if create and len(found) == 1:
        raise Matched(found[0])
    raise Conflict(f"another request changed what {condition.header} matches",
                   [Issue(condition.header, "matched "
                          f"{len(condition.matched)}, now {len(found)}; retry", "conflict")])
