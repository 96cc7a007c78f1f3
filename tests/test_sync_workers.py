"""Several sync workers share one outbox on PostgreSQL without sending any row twice, and the
managed patients of a pull with leases (store/leases.py) on SQLite and PostgreSQL."""

import datetime as dt
import threading
from collections import Counter

import pytest
import sqlalchemy as sa

from fhir_bridge.app import create_app
from fhir_bridge.cli import load_demo
from fhir_bridge.store import leases, outbox
from fhir_bridge.store import tables as t
from fhir_bridge.store.records import utcnow
from fhir_bridge.sync import remote_map
from fhir_bridge.sync.pull import PULL_TYPES

from .conftest import hapi_count
from .test_sync_durability import drain
from .test_sync_pull_hapi import make_puller, synced  # noqa: F401 - synced: a fixture
from .test_sync_push_hapi import local_counts, make_pusher, remote_counts

TARGET = "hapi"
LEASE = 60


def manage(engine, *patients: str, target: str = TARGET) -> None:
    """What a push leaves behind: the target's Patient for a local one."""
    with engine.begin() as conn:
        for patient in patients:
            remote_map.remember(conn, target, "Patient", f"pat-{patient}", patient, "1", None)


def run_out(engine, lease: leases.Lease) -> None:
    """The lease's time is up (as if its worker was killed lease_seconds ago)."""
    with engine.begin() as conn:
        conn.execute(t.pull_leases.update().where(
            t.pull_leases.c.patient_remote_id == lease.patient).values(
            claimed_until=utcnow() - dt.timedelta(seconds=1)))


def take_all(engine, worker: str, began) -> list[leases.Lease]:
    taken = []
    while (lease := leases.claim_next(engine, TARGET, worker, LEASE, began)) is not None:
        taken.append(lease)
    return taken


@pytest.fixture
def engine(app):
    return app.extensions["fhir_bridge"].engine


def test_a_held_patient_goes_to_no_other_worker_until_its_lease_runs_out(engine):
    manage(engine, "a", "b")
    leases.register(engine, TARGET)
    began = utcnow()
    first = take_all(engine, "w1", began)
    assert sorted(lease.patient for lease in first) == ["a", "b"]
    assert take_all(engine, "w2", began) == []
    assert leases.claim_patient(engine, TARGET, "a", "w2", LEASE) is None
    run_out(engine, first[0])
    taken = take_all(engine, "w2", began)
    assert [lease.patient for lease in taken] == [first[0].patient]
    with engine.begin() as conn, pytest.raises(leases.LeaseLost):
        leases.hold(conn, first[0], LEASE)  # the dead worker's token holds nothing any more
    leases.renew(engine, taken[0], LEASE)  # the new holder's does


def test_a_finished_patient_waits_for_the_next_pass_and_an_unfinished_one_goes_first(engine):
    manage(engine, "a", "b", "c")
    leases.register(engine, TARGET)
    began = utcnow()
    a, b, c = (leases.claim_next(engine, TARGET, "w1", LEASE, began) for _ in range(3))
    assert [a.patient, b.patient, c.patient] == ["a", "b", "c"]
    leases.release(engine, a, finished=True)
    leases.release(engine, b, finished=False)  # stopped mid-patient (SIGTERM)
    leases.release(engine, c, finished=True)
    assert leases.held(engine) == []
    assert [lease.patient for lease in take_all(engine, "w2", began)] == ["b"]
    later = utcnow() + dt.timedelta(seconds=1)  # a new pass: least recently pulled first
    assert [lease.patient for lease in take_all(engine, "w2", later)] == ["a", "c"]


def test_a_patient_no_longer_on_the_target_is_not_pulled(engine):
    manage(engine, "a", "b")
    leases.register(engine, TARGET)
    with engine.begin() as conn:  # what target clean does
        conn.execute(t.remote_resources.delete().where(t.remote_resources.c.remote_id == "b"))
    manage(engine, "b", target="other")
    assert [lease.patient for lease in take_all(engine, "w1", utcnow())] == ["a"]


def test_registering_twice_and_concurrently_keeps_one_lease_per_patient(engine):
    manage(engine, *[f"p{i}" for i in range(20)])
    errors = []

    def register():
        try:
            leases.register(engine, TARGET)
            leases.register(engine, TARGET, ["p1", "p2", "extra"])
        except Exception as exc:  # noqa: BLE001 - collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.pull_leases)).scalar() == 21


def test_workers_claiming_at_once_take_disjoint_patients(app, database_url):
    """Each worker its own engine, as separate processes would have."""
    patients = [f"p{i:02d}" for i in range(40)]
    manage(app.extensions["fhir_bridge"].engine, *patients)
    began = utcnow()
    taken: dict[int, list[str]] = {}
    engines = [create_app({"database_url": database_url}).extensions["fhir_bridge"].engine
               for _ in range(4)]
    start = threading.Barrier(len(engines))

    def work(index, engine):
        leases.register(engine, TARGET)
        start.wait()
        taken[index] = [lease.patient for lease in take_all(engine, f"w{index}", began)]

    threads = [threading.Thread(target=work, args=(i, e)) for i, e in enumerate(engines)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for engine in engines:
        engine.dispose()
    everyone = [p for mine in taken.values() for p in mine]
    assert sorted(everyone) == patients  # each exactly once


@pytest.mark.hapi
def test_a_puller_whose_lease_was_taken_over_moves_no_watermark_past_what_it_settled(synced):
    """The lease runs out while the second page of a type is being read (the worker stalled),
    and another worker takes the patient: the stalled one stops at the end of that type at the
    latest, keeps the watermarks of the types it finished under its lease, writes none for the
    type in hand, reads no further type and gives back nothing that is not its own."""
    app, bridge, pusher, base = synced
    puller = make_puller(bridge, pusher, page_size=3)
    patient = puller.managed_patients()[0]
    taken: dict = {}
    search_all = puller.client.search_all

    def stalling(rtype, params):
        for number, resource in enumerate(search_all(rtype, params)):
            if number == 3 and not taken:  # the second page: the first one was applied
                with bridge.engine.begin() as conn:
                    conn.execute(t.pull_leases.update().values(
                        claimed_until=utcnow() - dt.timedelta(seconds=1)))
                taken[rtype] = leases.claim_patient(bridge.engine, pusher.target.name,
                                                    patient, "other", LEASE)
            yield resource

    puller.client.search_all = stalling
    report = puller.pull(patients=[patient])
    assert report.leased_elsewhere == 1 and taken, report.reasons
    (in_hand, other), = taken.items()
    done = PULL_TYPES[:PULL_TYPES.index(in_hand)]
    assert report.seen <= sum(hapi_count(base, rtype, patient=patient)
                              for rtype in (*done, in_hand))
    with bridge.engine.connect() as conn:
        marked = set(conn.execute(sa.select(t.sync_watermarks.c.resource_type).where(
            t.sync_watermarks.c.patient_remote_id == patient)).scalars())
    assert marked == {rtype for rtype in done if hapi_count(base, rtype, patient=patient)}
    assert [(p, token) for _, p, token in leases.held(bridge.engine)] == [(patient, other.token)]


@pytest.mark.hapi
@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
def test_two_workers_against_postgresql_send_each_row_once(database_url, hapi_url):
    setup = create_app({"database_url": database_url})
    load_demo(setup)
    sent: list[Counter] = [Counter(), Counter()]
    pushers = []
    for index in range(2):
        # each worker its own app and connection pool, as separate processes would have
        bridge = create_app({"database_url": database_url}).extensions["fhir_bridge"]
        pusher = make_pusher(bridge, hapi_url, worker=f"worker-{index}", batch_size=10)
        real = pusher.client.transaction

        def recording(bundle, real=real, seen=sent[index]):
            answer = real(bundle)  # a refused transaction writes nothing: count only answers
            for entry in bundle["entry"]:
                seen[entry["request"]["url"]] += 1
            return answer

        pusher.client.transaction = recording
        pushers.append(pusher)
    threads = [threading.Thread(target=drain, args=(p,)) for p in pushers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    both = sent[0] + sent[1]
    assert sent[0] and sent[1], "both workers took part"
    assert [url for url, n in both.items() if n > 1] == []
    bridge = setup.extensions["fhir_bridge"]
    assert outbox.status_counts(bridge.engine) == {"done": sum(local_counts(bridge).values())}
    assert remote_counts(hapi_url) == local_counts(bridge)
    for pusher in pushers:
        pusher.engine.dispose()
    bridge.engine.dispose()


def test_a_pass_whose_leases_keep_running_out_ends_and_takes_each_patient_once(app, engine):
    """A patient whose lease ran out mid-pull is released unfinished and so is the first one
    free again: the pass takes it once and ends, so the worker gets on with its other tasks
    (it looped on that patient before)."""
    from fhir_bridge.sync.pull import Puller
    from fhir_bridge.sync.targets import Target

    manage(engine, "a", "b")
    bridge = app.extensions["fhir_bridge"]
    puller = Puller(engine, bridge.mapper, bridge.store, None,
                    Target(TARGET, "http://127.0.0.1:9/fhir", lease_seconds=LEASE))
    taken = []

    def lease_runs_out(lease, report, stopping):  # as _pull_leased does on LeaseLost
        taken.append(lease.patient)
        leases.release(engine, lease, finished=False)

    puller._pull_leased = lease_runs_out
    done = threading.Thread(target=puller.pull, daemon=True)
    done.start()
    done.join(timeout=30)
    assert not done.is_alive(), f"the pass did not end: took {Counter(taken)}"
    assert sorted(taken) == ["a", "b"]
    assert take_all(engine, "w2", utcnow()) != []  # nothing left held
