"""The store: one transaction per change, versions only on real change, an outbox row per
resource change, migrations that match the tables."""

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
