"""How a push writes a resource the target has not confirmed yet (its *first write*).

- ``client-ids``: ``PUT Type/<id>`` with an id derived from the target and the local
  resource (a UUID v5, also the entry's fullUrl), so a retry, a lost answer or a crash replays
  the same PUT onto the same resource. The server does no search; resources of other bundles
  can point at it as ``Type/<id>`` before its answer arrives. Chosen by ``target check`` when
  the server creates a test Patient at an id the client chose (HAPI: ClientIdStrategy ANY).
- ``conditional-update``: ``PUT Type?identifier=system|value``: the server searches the
  bridge's identifier first. Always safe; the mode when nothing was recorded.

A resource the target already holds (the remote id map: pushed and confirmed, or found by a
pull because it carries the bridge's identifier) is updated by its remote id in either mode.

Switching to client ids must not duplicate a resource whose earlier write may have landed
under an id the server chose (sent by conditional update, answer lost, worker killed): the
switch lists, in the same transaction and serialized with outbox claims, every resource with
an unfinished outbox row that was ever claimed or failed (``sync_conditional_only``); those
keep conditional update on that target, which finds whatever landed by its identifier. A
worker decides the kind of each entry after its last claim of a batch, so a batch claimed
before the switch was either listed or goes by conditional update.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..store import outbox
from ..store import tables as t
from ..store.records import utcnow
from .bundles import Key, entry_uuid

CLIENT_IDS = "client-ids"
CONDITIONAL = "conditional-update"
MODES = (CLIENT_IDS, CONDITIONAL)

modes = t.sync_target_modes
listed = t.sync_conditional_only


def client_id(target: str, key: Key) -> str:
    """The id a first write by client id puts the resource at (never purely numeric)."""
    return str(entry_uuid(target, key))


def mode(conn: sa.Connection, target: str) -> str:
    recorded = conn.execute(sa.select(modes.c.first_write).where(
        modes.c.target == target)).scalar()
    return recorded if recorded in MODES else CONDITIONAL


def record(engine: sa.Engine, target: str, first_write: str) -> None:
    """Record the target's first-write mode (see the module docstring for the switch)."""
    if first_write not in MODES:
        raise ValueError(f"first_write must be one of {MODES}")
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            outbox.serialize_claims(conn)  # claims before this one have committed
        before = mode(conn, target)
        values = dict(first_write=first_write, checked_at=utcnow())
        if not conn.execute(modes.update().where(modes.c.target == target)
                            .values(**values)).rowcount:
            conn.execute(modes.insert().values(target=target, **values))
        if first_write == before:
            return
        conn.execute(listed.delete().where(listed.c.target == target))
        if first_write == CLIENT_IDS:
            o = t.outbox
            touched = sa.select(sa.literal(target), o.c.resource_type, o.c.resource_id) \
                .where(o.c.status != "done",
                       sa.or_(o.c.claimed_by.is_not(None), o.c.last_error.is_not(None))) \
                .distinct()
            conn.execute(listed.insert().from_select(
                ["target", "resource_type", "local_id"], touched))


def by_client_id(conn: sa.Connection, target: str, keys: set[Key]) -> set[Key]:
    """Which of these (unconfirmed) resources a first write puts at their client id."""
    if not keys or mode(conn, target) != CLIENT_IDS:
        return set()
    by_type: dict[str, list[str]] = {}
    for rtype, rid in keys:
        by_type.setdefault(rtype, []).append(rid)
    kept: set[Key] = set()
    for rtype, ids in by_type.items():
        for start in range(0, len(ids), 500):
            kept |= {(rtype, rid) for rid in conn.execute(sa.select(listed.c.local_id).where(
                listed.c.target == target, listed.c.resource_type == rtype,
                listed.c.local_id.in_(ids[start:start + 500]))).scalars()}
    return keys - kept
