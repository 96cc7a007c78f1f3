"""Claims on PostgreSQL: two workers claiming at the same moment never split one resource's
rows between them (each would send the resource: a duplicate on the target)."""

import threading
from collections import defaultdict

import pytest
import sqlalchemy as sa

from fhir_bridge.app import create_app
from fhir_bridge.store import outbox
from fhir_bridge.store import tables as t
from fhir_bridge.store.records import utcnow

ROUNDS = 15


@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_concurrent_claims_never_give_one_resource_to_two_workers(database_url):
    engines = [create_app({"database_url": database_url}).extensions["fhir_bridge"].engine
               for _ in range(2)]
    # One lone row first, then two rows per resource: every batch of 10 ends inside a pair.
    keys = [("Patient", "lone")] + [("Patient", f"p{i}") for i in range(60) for _ in range(2)]
    split = []
    try:
        for _ in range(ROUNDS):
            with engines[0].begin() as conn:
                conn.execute(t.outbox.delete())
                conn.execute(t.outbox.insert(), [
                    dict(resource_type=rtype, resource_id=rid, version_id=1,
                         operation="upsert", status="pending", attempts=0,
                         created_at=utcnow()) for rtype, rid in keys])
            start = threading.Barrier(2)

            def claim(engine, name):
                start.wait()
                for _ in range(4):
                    outbox.claim(engine, name, 10)

            threads = [threading.Thread(target=claim, args=(engine, f"w{i}"))
                       for i, engine in enumerate(engines)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            holders = defaultdict(set)
            with engines[0].connect() as conn:
                for row in conn.execute(sa.select(t.outbox.c.resource_id, t.outbox.c.claimed_by)
                                        .where(t.outbox.c.claimed_by.is_not(None))):
                    holders[row.resource_id].add(row.claimed_by.split(":")[0])
            split += [rid for rid, workers in holders.items() if len(workers) > 1]
    finally:
        for engine in engines:
            engine.dispose()
    assert split == []
