"""The store: one transaction per change, versions only on real change, an outbox row per
resource change, migrations that match the tables."""

import json

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from fhir_bridge.errors import FhirValidationError
from fhir_bridge.mapping.document import load_document
from fhir_bridge.model import concept_by_name
from fhir_bridge.store import tables as t

from .conftest import FIXTURES, read_json, snapshot

P01 = read_json(FIXTURES / "internal" / "p01-depression-ssri-titration.json")


@pytest.fixture
def bridge(app):
    return app.extensions["fhir_bridge"]


def count(bridge, table, *where):
    with bridge.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar()


def test_migrations_create_exactly_the_declared_tables(bridge):
    with bridge.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), t.metadata)
    assert diff == []


def test_saving_writes_records_resources_history_and_one_outbox_row_per_resource(bridge):
    pairs = load_document(P01)
    bridge.store.save(pairs)
    resources = sum(len(bridge.mapper.to_fhir(c.name, r)) for c, r in pairs)
    assert count(bridge, t.records) == len(pairs)
    assert count(bridge, t.resources) == resources
    assert count(bridge, t.resource_history) == resources
    assert count(bridge, t.outbox, t.outbox.c.status == "pending") == resources


def test_saving_the_same_content_again_writes_nothing(bridge):
    pairs = load_document(P01)
    bridge.store.save(pairs)
    before = snapshot(_app(bridge))
    bridge.store.save(pairs)
    assert snapshot(_app(bridge)) == before


def test_a_change_versions_only_the_resources_whose_content_changed(bridge):
    pairs = load_document(P01)
    bridge.store.save(pairs)
    plans = concept_by_name("care-plan")
    plan = dict(next(r for c, r in pairs if c is plans))
    plan["goals"] = [dict(plan["goals"][0], status="completed"),
                     plan["goals"][1]]
    outbox_before = count(bridge, t.outbox)
    bridge.store.save([(plans, plan)])
    with bridge.engine.connect() as conn:
        rows = conn.execute(sa.select(t.outbox.c.resource_type, t.outbox.c.resource_id,
                                      t.outbox.c.version_id)
                            .where(t.outbox.c.seq > outbox_before)).all()
    # The goal changed, and the CarePlan's narrative lists goal statuses, so both change.
    assert sorted(rows) == [("CarePlan", "cp-p01-plan", 2), ("Goal", "goal-p01-goal-remission", 2)]


def test_a_removed_goal_is_deleted_with_a_history_entry_and_an_outbox_row(bridge):
    pairs = load_document(P01)
    bridge.store.save(pairs)
    plans = concept_by_name("care-plan")
    plan = dict(next(r for c, r in pairs if c is plans))
    plan["goals"] = plan["goals"][:1]
    plan["activities"] = [dict(a, goal_ids=[g for g in a.get("goal_ids", [])
                                            if g != "p01-goal-sleep"])
                          for a in plan["activities"]]
    for activity in plan["activities"]:
        if not activity["goal_ids"]:
            del activity["goal_ids"]
    bridge.store.save([(plans, plan)])
    with bridge.engine.connect() as conn:
        goal = conn.execute(sa.select(t.resources).where(
            t.resources.c.id == "goal-p01-goal-sleep")).one()
        deletes = conn.execute(sa.select(t.outbox).where(
            t.outbox.c.operation == "delete")).all()
    assert goal.deleted and goal.version_id == 2
    assert [(d.resource_id, d.version_id) for d in deletes] == [("goal-p01-goal-sleep", 2)]


def test_an_invalid_resource_aborts_the_whole_save(bridge, monkeypatch):
    pairs = load_document(P01)
    real = bridge.mapper.to_fhir

    def broken(concept, record):
        out = real(concept, record)
        if concept == "care-plan":
            out[0]["subject"] = "Patient/pat-p01"  # a string where a Reference belongs
        return out

    monkeypatch.setattr(bridge.mapper, "to_fhir", broken)
    before = snapshot(_app(bridge))
    with pytest.raises(FhirValidationError) as caught:
        bridge.store.save(pairs)
    assert any(i.path.startswith("CarePlan.subject") for i in caught.value.issues)
    assert snapshot(_app(bridge)) == before


def test_a_failure_after_some_writes_rolls_everything_back(bridge):
    pairs = load_document(P01)

    def fail(conn, saved):
        assert len(saved) == len(pairs)
        raise RuntimeError("crash after the writes, before commit")

    before = snapshot(_app(bridge))
    with pytest.raises(RuntimeError):
        bridge.store.save(pairs, also=fail)
    assert snapshot(_app(bridge)) == before


def _app(bridge):
    class Holder:
        extensions = {"fhir_bridge": bridge}
    return Holder


# --- check-and-write under concurrency (tests/test_races.py races whole requests) ----------

def _key_row(key: str, request_hash: str | None = "h") -> dict:
    import datetime as dt
    return dict(key=key, request_hash=request_hash, status=200, body="{}", location=None,
                created_at=dt.datetime.now(dt.timezone.utc))


def test_a_duplicate_key_met_inside_a_save_is_a_conflict_and_writes_nothing(bridge):
    """What a concurrent save inserted meanwhile (a unique violation) is a Conflict (409),
    never the driver's IntegrityError (500), and the save is rolled back."""
    from fhir_bridge.errors import Conflict

    with bridge.engine.begin() as conn:
        conn.execute(t.idempotency_keys.insert().values(**_key_row("taken")))
    before = snapshot(_app(bridge))
    with pytest.raises(Conflict):
        bridge.store.save(load_document(P01), first=lambda conn: conn.execute(
            t.idempotency_keys.insert().values(**_key_row("taken"))))
    assert snapshot(_app(bridge)) == before


def test_other_integrity_errors_are_not_taken_for_a_conflict(bridge):
    with pytest.raises(sa.exc.IntegrityError):
        bridge.store.save(load_document(P01), first=lambda conn: conn.execute(
            t.idempotency_keys.insert().values(**_key_row("k", request_hash=None))))
    assert count(bridge, t.records) == 0


def test_on_sqlite_a_second_writer_waits_for_the_first_and_readers_take_no_lock(tmp_path):
    """BEGIN IMMEDIATE: a writing transaction holds SQLite's write lock from its first read;
    another writer waits (busy timeout) instead of failing, and then reads what the first
    committed; a reader neither waits for a writer nor blocks one."""
    import threading
    import time

    from fhir_bridge.store.database import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE counter (n INTEGER NOT NULL)")
        conn.exec_driver_sql("INSERT INTO counter VALUES (0)")

    def increment():
        with engine.begin() as conn:
            n = conn.exec_driver_sql("SELECT n FROM counter").scalar()
            time.sleep(0.02)  # the other writer tries meanwhile
            conn.exec_driver_sql(f"UPDATE counter SET n = {n + 1}")

    with engine.connect() as reader:  # an open read transaction all along
        assert reader.exec_driver_sql("SELECT n FROM counter").scalar() == 0
        threads = [threading.Thread(target=increment) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert reader.exec_driver_sql("SELECT n FROM counter").scalar() == 0  # its snapshot
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT n FROM counter").scalar() == 8  # no lost update
    engine.dispose()


def test_a_write_lock_held_past_the_busy_timeout_is_a_conflict_not_a_500(tmp_path, monkeypatch):
    """A lost race the database itself decides (SQLite locked past the busy timeout; on
    PostgreSQL a deadlock or serialization failure) is a Conflict (409), and nothing is saved."""
    from fhir_bridge.app import build_bridge
    from fhir_bridge.config import load_config
    from fhir_bridge.errors import Conflict
    from fhir_bridge.store import database

    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT", 0.2)
    bridge = build_bridge(load_config({"database_url": f"sqlite:///{tmp_path / 'busy.db'}"}))
    with bridge.engine.begin():  # another writer, still in its transaction (BEGIN IMMEDIATE)
        with pytest.raises(Conflict) as refused:
            bridge.store.save(load_document(P01))
        assert refused.value.status == 409
    assert count(bridge, t.records) == 0
    bridge.engine.dispose()


# --- reference rules: a patient's record names only that patient's records -----------------

P06 = read_json(FIXTURES / "internal" / "p06-family-caregiver.json")


def _with(collection: str, index: int = 0, **changes) -> dict:
    return dict(P01[collection][index], **changes)


def _p01_team_listing_p06() -> dict:
    team = _with("care-teams")
    return dict(team, participants=team["participants"] + [
        {"member": {"type": "patient", "id": "p06"}, "role": "patient"},
        {"member": {"type": "caregiver", "id": "p06-cg1"}, "role": "informal-caregiver"}])


def _p01_plan_pointing_at_p06() -> dict:
    plan = _with("care-plans")
    activities = [dict(plan["activities"][0], prescription_id="p06-rx3")]
    return dict(plan, activities=activities + plan["activities"][1:])


CROSS_PATIENT = {
    "side effect suspecting another patient's prescription": (
        "POST", "side-effects", lambda: _with("side-effects", id="p01-se9",
                                              suspected_prescription_id="p06-rx3"),
        ["suspected_prescription_id"]),
    "adherence report on another patient's prescription": (
        "POST", "adherence-reports", lambda: _with("adherence-reports", id="p01-adh9",
                                                   prescription_id="p06-rx3"),
        ["prescription_id"]),
    "care team listing another patient and their caregiver": (
        "PUT", "care-teams", _p01_team_listing_p06,
        ["participants[4].member", "participants[5].member"]),
    "plan activity pointing at another patient's prescription": (
        "PUT", "care-plans", _p01_plan_pointing_at_p06, ["activities[0].prescription_id"]),
}


@pytest.fixture
def two_patients(client):
    for document in (P01, P06):
        assert client.post("/api/v1/documents", json=document).status_code == 200
    return client


@pytest.mark.parametrize("case", sorted(CROSS_PATIENT))
def test_a_record_naming_another_patients_record_is_refused_naming_the_field(
        app, two_patients, case):
    method, collection, body, fields = CROSS_PATIENT[case]
    record = body()
    url = f"/api/v1/{collection}" + (f"/{record['id']}" if method == "PUT" else "")
    before = snapshot(app)
    response = two_patients.open(url, method=method, json=record)
    assert response.status_code == 422, response.json
    assert response.json["resourceType"] == "OperationOutcome"
    assert sorted(e for issue in response.json["issue"] for e in issue["expression"]) == fields
    assert all("another patient" in issue["diagnostics"] for issue in response.json["issue"])
    assert snapshot(app) == before


def test_practitioners_belong_to_no_patient_and_may_be_named_by_anyones_records(two_patients):
    report = _with("side-effects", id="p01-se9",
                   reported_by={"type": "practitioner", "id": "dr-halvorsen"})  # p06's doctor
    assert two_patients.post("/api/v1/side-effects", json=report).status_code == 201


# -- the statements of a save (store/batch_reads.py, store/batch_writes.py) ------------------

def _with_weights(count: int) -> dict:
    """P01 with ``count`` more weight measurements (ids p01-wt-extra-<k>)."""
    document = json.loads(json.dumps(P01))
    first = document["measurements"][0]
    document["measurements"] += [dict(first, id=f"p01-wt-extra-{k}", value=60 + k)
                                 for k in range(count)]
    return document


def _statements_of(bridge, save) -> int:
    statements = []

    def seen(conn, cursor, statement, *_):
        statements.append(statement)

    sa.event.listen(bridge.engine, "before_cursor_execute", seen)
    try:
        save()
    finally:
        sa.event.remove(bridge.engine, "before_cursor_execute", seen)
    return len(statements)


def test_a_saves_statements_do_not_grow_with_its_records(bridge):
    """Regression (bench/scale_bench.py): a save read and wrote each record, resource, history
    version and index entry with statements of its own: about 440 for one imported document,
    most of an import's time. Its reads and inserts now go by table, so twenty more records
    of a concept cost no more statements than none (their rows travel in the same ones)."""
    few = _statements_of(bridge, lambda: bridge.store.save(load_document(_with_weights(0))))
    with bridge.engine.begin() as conn:
        for table in (t.records, t.resources, t.resource_history, t.outbox, t.search_index):
            conn.execute(table.delete())
    many = _statements_of(bridge, lambda: bridge.store.save(load_document(_with_weights(20))))
    assert many == few
    assert count(bridge, t.records, t.records.c.id.like("p01-wt-extra-%")) == 20


def test_a_batch_naming_a_record_twice_saves_both_as_successive_versions(bridge):
    """Within one save, the second change of a record sees the first (read state is kept up to
    date as the batch writes, store/batch_reads.py): version 2, two history versions of its
    resource, two outbox rows, and the resource holds the second content."""
    pairs = load_document(_with_weights(0))
    concept, weight = next((c, r) for c, r in pairs if r["id"] == "p01-wt1")
    bridge.store.save(pairs + [(concept, dict(weight, value=70.2))])
    stored = bridge.store.get(concept, "p01-wt1")
    assert (stored.version, stored.data["value"]) == (2, 70.2)
    (resource_id,) = [r["id"] for r in bridge.mapper.to_fhir(concept.name, weight)]
    with bridge.engine.connect() as conn:
        row = conn.execute(sa.select(t.resources).where(t.resources.c.id == resource_id)).one()
        versions = conn.execute(sa.select(t.resource_history.c.version_id).where(
            t.resource_history.c.id == resource_id)
            .order_by(t.resource_history.c.version_id)).scalars().all()
    assert row.version_id == 2 and json.loads(row.content)["valueQuantity"]["value"] == 70.2
    assert versions == [1, 2]
    assert count(bridge, t.outbox, t.outbox.c.resource_id == resource_id) == 2


def test_a_resource_id_taken_by_another_record_of_the_same_batch_is_a_conflict(bridge):
    """Two records of one save that render the same resource id: refused, nothing written."""
    from fhir_bridge.errors import Conflict

    pairs = load_document(P01)
    concept, weight = next((c, r) for c, r in pairs if r["id"] == "p01-wt1")
    twin = dict(weight, id="p01-wt1-twin")
    original = bridge.mapper.to_fhir
    clash = bridge.mapper.to_fhir(concept.name, weight)[0]["id"]

    def rendering(name, record):
        resources = original(name, record)
        if record is twin:
            resources = [dict(resources[0], id=clash)]
        return resources

    bridge.mapper.to_fhir = rendering
    try:
        with pytest.raises(Conflict):
            bridge.store.save(pairs + [(concept, twin)])
    finally:
        bridge.mapper.to_fhir = original
    assert count(bridge, t.records) == 0 and count(bridge, t.resources) == 0
