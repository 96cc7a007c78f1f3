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


def test_a_claim_reads_the_pending_rows_not_every_row_done_before_them(app):
    """Regression (bench/scale_bench.py, 1M resources): the claim walked the primary key from
    the first outbox row, skipping each row already done (44,000 of them after 44,000 rows
    pushed, 57 ms a claim), so a push cost more with every row it sent. Its query must be
    answered from an index of the pending rows in seq order (PostgreSQL: the partial index of
    migration 0019), with 20,000 rows done ahead of the pending ones."""
    engine = app.extensions["fhir_bridge"].engine
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(t.outbox.insert(), [
            dict(resource_type="Observation", resource_id=f"o{i}", version_id=1,
                 operation="upsert", status="done" if i < 20_000 else "pending", attempts=0,
                 created_at=now) for i in range(20_100)])
        conn.exec_driver_sql("ANALYZE outbox")
    claims = []

    def seen(conn, cursor, statement, params, *_):
        if "ORDER BY outbox.seq" in statement and "LIMIT" in statement:
            claims.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        token, rows = outbox.claim(engine, "w", 100)
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert [r.resource_id for r in rows] == [f"o{i}" for i in range(20_000, 20_100)]
    (statement, params), = claims
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(explain + statement, params))
    if engine.dialect.name == "sqlite":
        # SQLite's index on status alone keeps equal keys in rowid (= seq) order: it serves
        # the same scan, and its planner may take either
        assert "SCAN outbox" not in plan and "TEMP B-TREE" not in plan, plan
        assert "ix_outbox_pending_seq" in plan or "ix_outbox_status (status=?)" in plan, plan
    else:
        assert "ix_outbox_pending_seq" in plan and "outbox_pkey" not in plan, plan
