"""A transaction the real HAPI server refuses is bisected: halves, recursively, until the refused
entries stand alone. Finding k refused entries among n costs about 2 k log2(n) more bundles,
not n; the refused ones are dead-lettered with HAPI's reason, the rest arrive once."""

import math

import pytest
import sqlalchemy as sa

from fhir_bridge.cli import load_demo
from fhir_bridge.fhir import jsonio, references
from fhir_bridge.mapping.document import load_document
from fhir_bridge.store import outbox
from fhir_bridge.store import tables as t

from .conftest import FIXTURES, read_json
from .test_sync_crash import remembered_identifiers
from .test_sync_durability import identifiers_on
from .test_sync_push_hapi import local_counts, make_pusher

pytestmark = pytest.mark.hapi
#: Not a patient of the store: the reference goes out as it is, and HAPI refuses it
#: (HAPI-1094: Resource Patient/... not found, specified in path: Observation.subject).
NOWHERE = "Patient/not-on-the-target"


def unreferenced_observations(engine) -> list[tuple[str, str]]:
    """Observations nothing points at (so nothing has to wait for them), in outbox order."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.resources.c.resource_type, t.resources.c.id,
                                      t.resources.c.content)).all()
        order = [(r.resource_type, r.resource_id) for r in conn.execute(
            sa.select(t.outbox.c.resource_type, t.outbox.c.resource_id)
            .order_by(t.outbox.c.seq))]
    pointed = {references.split(ref) for row in rows
               for ref in references.references(jsonio.loads(row.content))}
    return [key for key in order if key[0] == "Observation" and key not in pointed]


def make_refused(engine, keys) -> None:
    """Point these stored Observations at a patient HAPI does not have."""
    with engine.begin() as conn:
        for rtype, rid in keys:
            row = conn.execute(sa.select(t.resources.c.content).where(
                t.resources.c.resource_type == rtype, t.resources.c.id == rid)).one()
            content = jsonio.loads(row.content)
            content["subject"] = {"reference": NOWHERE}
            conn.execute(t.resources.update().where(
                t.resources.c.resource_type == rtype, t.resources.c.id == rid)
                .values(content=jsonio.dumps(content)))


def counting(pusher) -> tuple[list[int], list[int]]:
    """Record the size of every transaction sent, and of every batch prepared."""
    sent, batches = [], []
    real_transaction, real_prepare = pusher.client.transaction, pusher._prepare

    def transaction(bundle):
        sent.append(len(bundle["entry"]))
        return real_transaction(bundle)

    def prepare(*args):
        batch = real_prepare(*args)
        if batch is not None and batch.todo:
            batches.append(len(batch.todo))
        return batch

    pusher.client.transaction, pusher._prepare = transaction, prepare
    return sent, batches


def assert_refused_dead_and_the_rest_once(bridge, hapi_url, refused) -> None:
    dead = outbox.listing(bridge.engine, "dead")
    assert sorted(row["resource"] for row in dead) == sorted(f"{k[0]}/{k[1]}" for k in refused)
    assert all("HAPI-1094" in row["last_error"] and NOWHERE in row["last_error"]
               for row in dead)
    assert outbox.status_counts(bridge.engine) == {
        "done": sum(local_counts(bridge).values()) - len(refused), "dead": len(refused)}
    remote_ids: dict = {}
    seen = identifiers_on(hapi_url, remote_ids)
    assert [key for key, n in seen.items() if n > 1] == []
    assert remembered_identifiers(bridge.engine) == remote_ids
    expected = local_counts(bridge)
    expected["Observation"] -= len(refused)
    assert {rtype: sum(1 for key in seen if key[0] == rtype) for rtype in expected} == expected


def test_one_refused_entry_among_n_is_found_in_at_most_1_plus_2_log2_n_bundles(
        sqlite_app, hapi_url):
    bridge = sqlite_app.extensions["fhir_bridge"]
    bridge.store.save(load_document(read_json(FIXTURES / "internal" /
                                              "p01-depression-ssri-titration.json")))
    n = sum(local_counts(bridge).values())
    candidates = unreferenced_observations(bridge.engine)
    refused = [candidates[len(candidates) // 2]]
    make_refused(bridge.engine, refused)
    pusher = make_pusher(bridge, hapi_url, batch_size=n)
    sent, batches = counting(pusher)
    report = pusher.push_all()
    assert batches == [n]  # all in one transaction, refused, then bisected
    assert report.bundles == len(sent) <= 1 + 2 * math.ceil(math.log2(n)), sent
    assert report.sent == n - 1 and report.dead == 1
    assert_refused_dead_and_the_rest_once(bridge, hapi_url, refused)


def test_the_demo_with_three_refused_resources_costs_logarithmic_extra_bundles(
        sqlite_app, hapi_url):
    """The realistic case: every fixture, batches of 100, three refused Observations spread
    over the outbox. Sending each refused batch's entries one by one would cost about 300
    more bundles."""
    bridge = sqlite_app.extensions["fhir_bridge"]
    load_demo(sqlite_app)
    candidates = unreferenced_observations(bridge.engine)
    refused = [candidates[0], candidates[len(candidates) // 2], candidates[-1]]
    make_refused(bridge.engine, refused)
    pusher = make_pusher(bridge, hapi_url, batch_size=100)
    sent, batches = counting(pusher)
    report = pusher.push_all()
    bound = len(batches) + len(refused) * 2 * math.ceil(math.log2(max(batches)))
    print(f"{sum(batches)} resources in {len(batches)} batches, {len(refused)} refused: "
          f"{len(sent)} bundles (bound {bound})")
    assert report.bundles == len(sent) <= bound
    assert report.dead == len(refused) and report.waiting == 0
    assert_refused_dead_and_the_rest_once(bridge, hapi_url, refused)
