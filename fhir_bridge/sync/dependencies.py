"""What a push entry needs on the target first, and the order that respects it.

An entry may be sent when every stored resource it points at is in the same transaction or
already confirmed on the target (in the remote id map). One that points at a resource still on
its way - leased by another worker (alive or dead), waiting for a retry, dead-lettered, held as
a conflict - waits instead of being sent: HAPI would refuse its conditional reference
("No resources match"), and that refusal says nothing about the entry itself.

A split after a refused bundle halves the entries in dependency order (what is pointed at goes
first), so each half only points at what went before it.
"""

from __future__ import annotations

import datetime as dt
import heapq
from dataclasses import dataclass

import sqlalchemy as sa

from ..store import outbox
from ..store.records import utcnow
from . import remote_map
from .bundles import Entry, Key


@dataclass(frozen=True)
class Wait:
    until: dt.datetime
    reason: str


def units(entries: list[Entry]) -> list[list[Entry]]:
    """The entries in dependency order, as units a split never cuts: one entry each, except
    entries in a reference cycle (and what points at them), which travel together at the end."""
    index = {e.key: i for i, e in enumerate(entries)}
    needs = {i: {index[d] for d in e.deps if d in index and index[d] != i}
             for i, e in enumerate(entries)}
    dependents: dict[int, list[int]] = {i: [] for i in needs}
    for i, deps in needs.items():
        for d in deps:
            dependents[d].append(i)
    missing = {i: len(deps) for i, deps in needs.items()}
    ready = [i for i, n in missing.items() if n == 0]
    heapq.heapify(ready)
    out: list[list[Entry]] = []
    while ready:
        i = heapq.heappop(ready)  # lowest first: the claim order where nothing forbids it
        out.append([entries[i]])
        for j in dependents[i]:
            missing[j] -= 1
            if missing[j] == 0:
                heapq.heappush(ready, j)
    rest = [entries[i] for i, n in sorted(missing.items()) if n > 0]
    if rest:
        out.append(rest)
    return out


def waits(conn: sa.Connection, target: str, token: str, entries: list[Entry],
          poll_seconds: float, hold_seconds: float) -> dict[Entry, Wait]:
    """The entries that must wait if these go together, and until when.

    A dependency leased by another worker is waited for until its lease runs out (at most
    ``poll_seconds``: it may be confirmed sooner); one pending without a lease for
    ``poll_seconds``; a dead-lettered one or a conflict for ``hold_seconds``. Dependencies held
    under this very claim (``token``) are left to the server, as are stored resources that no
    outbox row will ever send: nothing would come of waiting for them."""
    sending = {e.key for e in entries}
    outside: set[Key] = set()
    for e in entries:
        outside |= e.deps - sending
    if not outside:
        return {}
    unconfirmed = outside - set(remote_map.load(conn, target, outside))
    holders = {key: h for key, h in outbox.holders(conn, unconfirmed).items()
               if h.claimed_by != token}
    now = utcnow()
    blockers: dict[Key, Wait] = {key: _wait(key, h, now, poll_seconds, hold_seconds)
                                 for key, h in holders.items()}
    out: dict[Entry, Wait] = {}
    changed = True
    while changed:  # an entry that waits holds up what points at it in this bundle
        changed = False
        for e in entries:
            if e in out or e.deleted:
                continue
            why = [blockers[d] for d in sorted(e.deps) if d in blockers]
            if why:
                latest = max(why, key=lambda w: w.until)
                out[e] = latest
                blockers[e.key] = Wait(latest.until, f"{e.resource_type}/{e.local_id}, "
                                                     f"which waits: {latest.reason}")
                changed = True
    return {e: Wait(w.until, f"waiting: {w.reason}") for e, w in out.items()}


def _wait(key: Key, holder: outbox.Holder, now: dt.datetime, poll: float,
          hold: float) -> Wait:
    name = f"{key[0]}/{key[1]}"
    if holder.claimed_until is not None:
        until = min(holder.claimed_until, now + dt.timedelta(seconds=poll))
        return Wait(until, f"{name} is leased by {holder.claimed_by} until "
                           f"{holder.claimed_until.isoformat(timespec='seconds')}")
    if holder.status == "pending":
        return Wait(now + dt.timedelta(seconds=poll), f"{name} is not on the target yet")
    what = "dead-lettered" if holder.status == "dead" else "held as a conflict"
    return Wait(now + dt.timedelta(seconds=hold), f"{name} is {what}")
