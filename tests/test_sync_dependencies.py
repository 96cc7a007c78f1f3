"""What a push entry needs on the target first: an entry pointing at a resource another worker
holds waits for it (pending, no attempt counted) and goes once that lease is over; a split
sends what is pointed at first and never cuts a reference cycle. The target here is a stand-in
that answers every transaction (`responses`): what matters is what the bridge sends."""

import datetime as dt
import json

import pytest
import responses
import sqlalchemy as sa

from fhir_bridge.fhir import jsonio
from fhir_bridge.mapping.document import load_document
from fhir_bridge.store import outbox
from fhir_bridge.store import tables as t
from fhir_bridge.sync import dependencies
from fhir_bridge.sync.bundles import Entry
from fhir_bridge.sync.client import FhirClient
from fhir_bridge.sync.push import Pusher
from fhir_bridge.sync.targets import Target

from .conftest import FIXTURES, read_json

BASE = "http://127.0.0.1:8997/fhir"
PATIENT = ("Patient", "pat-p01")


def entry(rid: str, *deps: str) -> Entry:
    return Entry("Observation", rid, [1], False, {}, "h", None, ("urn:x", rid), "{}",
                 frozenset(("Observation", d) for d in deps))


def test_units_put_what_is_pointed_at_first_and_keep_a_cycle_together():
    a, b, c = entry("a", "b"), entry("b"), entry("c")
    x, y, z = entry("x", "y"), entry("y", "x"), entry("z", "x")
    order = dependencies.units([a, x, b, y, c, z])
    assert [[e.local_id for e in unit] for unit in order] == [["b"], ["a"], ["c"], ["x", "y", "z"]]


class Target200:
    """Answers each transaction with a location per entry, and remembers the bundles."""

    def __init__(self, mock):
        self.bundles = []
        self.count = 0
        mock.add_callback(responses.POST, BASE, callback=self.answer)

    def answer(self, request):
        bundle = json.loads(request.body)
        self.bundles.append(bundle)
        out = []
        for item in bundle["entry"]:
            self.count += 1
            rtype = item["request"]["url"].split("?")[0].split("/")[0]
            out.append({"response": {"status": "201 Created",
                                     "location": f"{rtype}/r{self.count}/_history/1"}})
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(
            {"resourceType": "Bundle", "type": "transaction-response", "entry": out})

    def sent(self) -> list[str]:
        return [item["fullUrl"] for bundle in self.bundles for item in bundle["entry"]]


def pointing_at(engine, key) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.resources.c.resource_type, t.resources.c.id,
                                      t.resources.c.content)).all()
    return {(r.resource_type, r.id) for r in rows
            if f'"reference":"{key[0]}/{key[1]}"' in jsonio.dumps(jsonio.loads(r.content))
            .replace(" ", "")}


@pytest.fixture
def mock():
    with responses.RequestsMock() as rsps:
        yield rsps


def test_an_entry_whose_dependency_another_worker_holds_waits_then_goes(app, mock):
    bridge = app.extensions["fhir_bridge"]
    bridge.store.save(load_document(read_json(FIXTURES / "internal" /
                                              "p01-depression-ssri-titration.json")))
    other = outbox.claim_resources(bridge.engine, "other:lease", {PATIENT}, 60)
    assert other  # another worker (alive or killed) holds the patient
    server = Target200(mock)
    with FhirClient(BASE, max_retries=0) as client:
        pusher = Pusher(bridge.engine, client, Target("stand-in", BASE, max_attempts=1,
                                                      retry_base_seconds=0.01))
        first = pusher.push_all()
        dependents = pointing_at(bridge.engine, PATIENT)
        assert dependents and first.dead == 0 and first.retried == 0
        assert first.waiting == len(dependents)
        with bridge.engine.connect() as conn:
            waiting = conn.execute(sa.select(t.outbox).where(
                t.outbox.c.status == "pending", t.outbox.c.claimed_by != "other:lease")).all()
        assert {(r.resource_type, r.resource_id) for r in waiting} == dependents
        assert all(r.attempts == 0 and r.last_error.startswith("waiting: ") for r in waiting)
        assert any("Patient/pat-p01 is leased by other:lease" in r.last_error for r in waiting)
        assert all("Patient?identifier" not in json.dumps(b) for b in server.bundles)

        with bridge.engine.begin() as conn:  # the other worker's lease runs out
            conn.execute(t.outbox.update().values(
                next_attempt_at=None, claimed_until=dt.datetime(2000, 1, 1,
                                                                tzinfo=dt.timezone.utc)))
        second = pusher.push_all()
    assert second.dead == 0 and second.waiting == 0
    assert second.sent == len(dependents) + 1  # the patient, then what points at it
    assert outbox.status_counts(bridge.engine) == {"done": first.sent + second.sent}
    assert len(server.sent()) == len(set(server.sent()))  # nothing sent twice
