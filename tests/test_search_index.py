"""The search-parameter index (search_index, fhir_bridge/facade/indexing.py): always what the
current resources hold (written in the saving transaction, rewritten on update, gone with the
resource), backfilled by its migration, and what a search reads instead of the whole type."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from fhir_bridge.facade import indexing, repository
from fhir_bridge.fhir import jsonio
from fhir_bridge.store import tables as t
from fhir_bridge.store.database import alembic_config, create_engine, migrate

from .conftest import FIXTURES, fixture_documents, read_json


def indexed(conn) -> dict[tuple[str, str], set]:
    out: dict[tuple[str, str], set] = {}
    for row in conn.execute(sa.select(t.search_index)):
        out.setdefault((row.resource_type, row.resource_id), set()).add(
            (row.param, row.system, row.value))
    return out


def expected(conn) -> dict[tuple[str, str], set]:
    """What the index must hold: the entries of every current resource."""
    out = {}
    for row in conn.execute(sa.select(t.resources).where(t.resources.c.deleted.is_(False))):
        entries = indexing.entries(jsonio.loads(row.content))
        if entries:
            out[(row.resource_type, row.id)] = entries
    return out


def load(client) -> None:
    for path in fixture_documents():
        assert client.post("/api/v1/documents", json=read_json(path)).status_code == 200


def test_the_index_follows_every_save_update_and_removal(app):
    client = app.test_client()
    load(client)
    engine = app.extensions["fhir_bridge"].engine
    with engine.connect() as conn:
        assert indexed(conn) == expected(conn)
        assert ("status", None, "active") in indexed(conn)[("CarePlan", "cp-p02-plan")]
    plan = read_json(FIXTURES / "internal" / "p02-bipolar-lithium.json")["care-plans"][0]
    activities = [dict(a, goal_ids=[g for g in a.get("goal_ids", []) if g != "p02-goal-sleep"])
                  if "goal_ids" in a else a for a in plan["activities"]]
    changed = dict(plan, status="completed", goals=plan["goals"][:2], activities=activities)
    response = client.put(f"/api/v1/care-plans/{plan['id']}", json=changed)
    assert response.status_code == 200, response.json
    with engine.connect() as conn:
        now = indexed(conn)
        assert now == expected(conn)
        assert ("status", None, "completed") in now[("CarePlan", "cp-p02-plan")]
        assert ("status", None, "active") not in now[("CarePlan", "cp-p02-plan")]
        assert ("Goal", "goal-p02-goal-sleep") not in now  # the goal left the plan
    search = client.get("/fhir/CarePlan?status=active&patient=pat-p02")
    assert search.status_code == 200 and search.json["total"] == 0


def test_the_migration_indexes_what_was_stored_before_it(database_url):
    engine = create_engine(database_url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0010")
    resource = {"resourceType": "Goal", "id": "goal-before", "lifecycleStatus": "active",
                "subject": {"reference": "Patient/pat-x"},
                "description": {"text": "Sleep seven hours"}}
    with engine.begin() as conn:
        conn.execute(sa.insert(sa.table(
            "resources", *[sa.column(c) for c in (
                "resource_type", "id", "concept", "record_id", "patient_id", "version_id",
                "last_updated", "content_hash", "content", "deleted")])).values(
            resource_type="Goal", id="goal-before", concept="goal", record_id="g",
            patient_id="x", version_id=1, last_updated=sa.func.now(),
            content_hash=jsonio.content_hash(resource), content=jsonio.dumps(resource),
            deleted=False))
    migrate(engine)
    with engine.connect() as conn:
        assert indexed(conn) == expected(conn) == {("Goal", "goal-before"): {
            ("lifecycle-status", None, "active"), ("patient", "Patient", "pat-x"),
            ("subject", "Patient", "pat-x")}}
    engine.dispose()


def test_a_search_reads_the_rows_that_can_match_not_the_whole_type(app, monkeypatch):
    client = app.test_client()
    load(client)
    read = []
    original = repository._from_resources
    monkeypatch.setattr(repository, "_from_resources",
                        lambda row: read.append(row.id) or original(row))
    lithium = client.get("/fhir/Observation?code=http://loinc.org|14334-7&_count=500").json
    assert lithium["total"] == 3 and sorted(read) == sorted(
        e["resource"]["id"] for e in lithium["entry"])
    read.clear()
    named = client.get("/fhir/Patient?name=thorn").json
    assert [e["resource"]["id"] for e in named["entry"]] == ["pat-p06"] and read == ["pat-p06"]
    read.clear()
    page = client.get("/fhir/Observation?status=final&_count=5").json
    assert page["total"] > 100 and len(read) == 5  # one page from SQL, the total counted there


def test_postgresql_knows_how_many_rows_a_common_search_term_matches(database_url):
    """Multi-column statistics (migration 0016): without them PostgreSQL multiplies the
    selectivities of resource_type, param, system and value as if they were independent,
    expects a handful of body weights where there are thousands, and picks the plan for a
    rare term (bench/README.md, growth)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite keeps no multi-column statistics")
    engine = create_engine(database_url)
    migrate(engine)
    types, params = ["Observation", "Condition", "Goal", "CarePlan", "Patient"], \
        ["code", "status", "category", "patient", "subject"]
    rows = [dict(resource_type="Observation", resource_id=f"obs-w{n}", param="code",
                 system="http://loinc.org", value="29463-7") for n in range(2000)]
    rows += [dict(resource_type=rtype, resource_id=f"{rtype}-{n}", param=param,
                  system="http://loinc.org" if n % 2 else None, value=f"v{n % 40}")
             for rtype in types for param in params for n in range(800)]
    with engine.begin() as conn:
        conn.execute(t.search_index.insert(), rows)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE search_index")
        plan = conn.exec_driver_sql(
            "EXPLAIN (FORMAT JSON) SELECT resource_id FROM search_index WHERE resource_type = "
            "'Observation' AND param = 'code' AND system = 'http://loinc.org' "
            "AND value = '29463-7'").scalar()[0]["Plan"]
    engine.dispose()
    assert 1000 <= plan["Plan Rows"] <= 4000  # 2,000 match
