"""Workers at scale (issue 15): three push workers and two pull workers, real `fhir-bridge
worker` processes, on one PostgreSQL against a real HAPI. One push worker is killed with SIGKILL
while it holds outbox rows, one pull worker while it holds a patient's lease; the others take
their work over once the leases run out. At the end every resource is on HAPI exactly once, no
outbox row is dead-lettered, every change made on HAPI came into the bridge exactly once, and
the workers stopped by SIGTERM leave no lease held."""

from collections import Counter

import pytest
import sqlalchemy as sa

from fhir_bridge.app import create_app
from fhir_bridge.cli import load_demo
from fhir_bridge.fhir import jsonio
from fhir_bridge.store import outbox
from fhir_bridge.store import tables as t
from fhir_bridge.store.records import utcnow

from .test_sync_durability import done_rows, identifiers_on
from .test_sync_pull_hapi import edit_on_server
from .test_sync_push_hapi import local_counts
from .test_worker import (kill_9, outbox_claims, pull_leases_of, start_worker, stop_within_grace,
                          wait_for, worker_env)

pytestmark = [pytest.mark.hapi, pytest.mark.postgres]
#: Short, so that what the killed workers hold comes back within the test.
LEASE_SECONDS = 4


def requests_to_edit(engine) -> dict[str, tuple[str, str]]:
    """One prescription per patient: remote patient id -> (local id, remote id) of its first
    MedicationRequest made from a prescription record."""
    rr, res = t.remote_resources, t.resources
    with engine.connect() as conn:
        rows = conn.execute(sa.select(res.c.id, res.c.content, rr.c.remote_id).join(
            rr, sa.and_(rr.c.resource_type == res.c.resource_type, rr.c.local_id == res.c.id))
            .where(res.c.resource_type == "MedicationRequest", rr.c.target == "hapi",
                   res.c.concept == "prescription").order_by(res.c.id)).all()
        patients = dict(conn.execute(sa.select(rr.c.local_id, rr.c.remote_id).where(
            rr.c.target == "hapi", rr.c.resource_type == "Patient")).all())
    chosen: dict[str, tuple[str, str]] = {}
    for row in rows:
        content = jsonio.loads(row.content)
        if not content.get("dosageInstruction"):
            continue
        patient = patients[content["subject"]["reference"].split("/", 1)[1]]
        chosen.setdefault(patient, (row.id, row.remote_id))
    return chosen


def versions_and_provenances(engine, local_id: str) -> tuple[int, int]:
    """How many versions the local MedicationRequest has, and how many Provenances (one per
    change pull took in) point at one of its versions."""
    res, history = t.resources, t.resource_history
    with engine.connect() as conn:
        versions = conn.execute(sa.select(sa.func.count()).select_from(history).where(
            history.c.resource_type == "MedicationRequest", history.c.id == local_id)).scalar()
        provenances = conn.execute(sa.select(res.c.content).where(
            res.c.resource_type == "Provenance")).scalars().all()
    prefix = f"MedicationRequest/{local_id}/_history/"
    pointing = sum(1 for content in provenances
                   if any(target["reference"].startswith(prefix)
                          for target in jsonio.loads(content).get("target", [])))
    return versions, pointing


@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_three_push_and_two_pull_workers_one_killed_each_send_and_take_everything_once(
        database_url, hapi_url):
    app = create_app({"database_url": database_url})
    bridge = app.extensions["fhir_bridge"]
    engine = bridge.engine
    load_demo(app)
    total = sum(local_counts(bridge).values())
    env = worker_env(database_url, hapi_url, LEASE_SECONDS, batch_size=20, page_size=20,
                     push_interval_seconds="0.2", pull_interval_seconds="0.2")
    workers = {name: start_worker(name, (task,), env) for name, task in (
        ("push-0", "push"), ("push-1", "push"), ("push-2", "push"),
        ("pull-0", "pull"), ("pull-1", "pull"))}
    try:
        # -- push: one worker dies holding rows; the others send everything once
        wait_for(lambda: done_rows(engine) >= 20 and outbox_claims(engine, "push-0:"), 90,
                 "push-0 to hold outbox rows mid-run")
        assert kill_9(workers["push-0"]) == -9
        assert 0 < done_rows(engine) < total, "push-0 must die mid-run, not after"
        wait_for(lambda: outbox.status_counts(engine) == {"done": total}, 120,
                 "the outbox to drain", every=0.2)

        # -- pull: changes made on HAPI, one pull worker dies holding a patient's lease
        edits = requests_to_edit(engine)
        assert len(edits) >= 5
        for number, (_, remote_id) in enumerate(edits.values()):
            edit_on_server(hapi_url, "MedicationRequest", remote_id, lambda r, n=number:
                           r["dosageInstruction"][0].update(
                               patientInstruction=f"Take after breakfast ({n})."))
        wait_for(lambda: pull_leases_of(engine, "pull-0:"), 60, "pull-0 to hold a lease")
        assert kill_9(workers["pull-0"]) == -9
        assert pull_leases_of(engine, "pull-0:"), "killed, it cannot give its lease back"
        # the dead worker's lease runs out; pull-1 takes its patient over
        wait_for(lambda: all(versions_and_provenances(engine, local_id)[1] >= 1
                             for local_id, _ in edits.values()), 90,
                 "every change made on HAPI to come in", every=0.2,
                 detail=lambda: (pull_state(engine), [versions_and_provenances(engine, local)
                                                      for local, _ in edits.values()]))
        taken_at = utcnow()
        wait_for(lambda: all_pulled_since(engine, taken_at), 60,
                 "one more pull of every patient", every=0.2)

        # -- SIGTERM: the survivors stop within their grace period, holding nothing
        for process in workers.values():
            if process.returncode is None:
                stop_within_grace(process)
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.kill()
                process.communicate()

    # nothing dead nor pending (the edits taken in may have added rows: each is done)
    assert set(outbox.status_counts(engine)) == {"done"}
    seen = identifiers_on(hapi_url)
    assert [key for key, n in seen.items() if n > 1] == []
    pushed = {rtype: n for rtype, n in local_counts(bridge).items() if rtype != "Provenance"}
    assert Counter(key[0] for key in seen) == Counter(pushed)  # (pull's own are never pushed)
    for local_id, _ in edits.values():  # each change taken in once: one new version, one
        assert versions_and_provenances(engine, local_id) == (2, 1), local_id  # Provenance
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.sync_conflicts)).scalar() \
            == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(t.sync_rejects)).scalar() == 0
    assert pull_leases_of(engine) == [] and outbox_claims(engine) == 0
    engine.dispose()


def all_pulled_since(engine, moment) -> bool:
    pl = t.pull_leases
    with engine.connect() as conn:
        rows = conn.execute(sa.select(pl.c.pulled_at).where(pl.c.target == "hapi")).scalars()
        return all(at is not None and at > moment for at in rows)


def pull_state(engine) -> dict:
    """What the pull workers left: conflicts, rejects, leases, heartbeats."""
    with engine.connect() as conn:
        return {"conflicts": conn.execute(sa.select(t.sync_conflicts.c.local_id)).all(),
                "rejects": conn.execute(sa.select(t.sync_rejects.c.reason)).all(),
                "leases": conn.execute(sa.select(t.pull_leases)).all(),
                "workers": conn.execute(sa.select(t.worker_heartbeats)).all()}
