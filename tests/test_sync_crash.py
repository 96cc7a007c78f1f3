"""A push worker killed with SIGKILL, and another push started at once: what the dead worker
still holds under its lease is waited for, never sent around nor dead-lettered, and every
resource reaches the real HAPI server exactly once (SQLite and PostgreSQL)."""

import json
import os
import subprocess
import sys
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from fhir_bridge.app import create_app
from fhir_bridge.cli import load_demo
from fhir_bridge.fhir import jsonio, references
from fhir_bridge.store import outbox
from fhir_bridge.store import tables as t
from fhir_bridge.store.records import utcnow

from .test_sync_durability import done_rows, drain, identifiers_on
from .test_sync_push_hapi import TYPES, local_counts, make_pusher

pytestmark = pytest.mark.hapi
LEASE_SECONDS = 6
#: Low on purpose: a resource refused twice for a dependency under the dead worker's lease
#: would be dead-lettered well before the lease runs out.
MAX_ATTEMPTS = 2


def remembered_identifiers(engine) -> dict:
    """(type, remote id) -> the identifier value of the local resource mapped to it."""
    rr, res = t.remote_resources, t.resources
    with engine.connect() as conn:
        rows = conn.execute(sa.select(rr.c.resource_type, rr.c.remote_id, res.c.content).join(
            res, sa.and_(res.c.resource_type == rr.c.resource_type,
                         res.c.id == rr.c.local_id))).all()
    return {(row.resource_type, row.remote_id):
            jsonio.loads(row.content)["identifier"][0]["value"] for row in rows}


def waiting_on_a_lease(engine) -> list[tuple[str, str]]:
    """Unclaimed pending resources that point at a resource leased right now and not yet
    confirmed on the target: what a second push finds after a worker died."""
    now = utcnow()
    o, res, rr = t.outbox, t.resources, t.remote_resources
    with engine.connect() as conn:
        leased = {(r.resource_type, r.resource_id) for r in conn.execute(
            sa.select(o.c.resource_type, o.c.resource_id).where(
                o.c.status == "pending", o.c.claimed_until > now))}
        leased -= {(r.resource_type, r.local_id) for r in conn.execute(
            sa.select(rr.c.resource_type, rr.c.local_id))}
        free = conn.execute(sa.select(res.c.resource_type, res.c.id, res.c.content).join(
            o, sa.and_(o.c.resource_type == res.c.resource_type, o.c.resource_id == res.c.id))
            .where(o.c.status == "pending",
                   sa.or_(o.c.claimed_until.is_(None), o.c.claimed_until <= now))).all()
    return [(row.resource_type, row.id) for row in free
            if {references.split(r) for r in references.references(jsonio.loads(row.content))}
            & leased]


def push_command() -> list[str]:
    return [sys.executable, "-m", "fhir_bridge.cli", "sync", "push"]


@pytest.fixture
def crash_app(database_url):
    app = create_app({"database_url": database_url})
    yield app
    app.extensions["fhir_bridge"].engine.dispose()


def test_a_push_right_after_a_killed_one_waits_for_its_leases_and_sends_each_resource_once(
        crash_app, database_url, hapi_url):
    bridge = crash_app.extensions["fhir_bridge"]
    load_demo(crash_app)
    total = sum(local_counts(bridge).values())
    target = {"crash": {"base_url": hapi_url, "batch_size": 10, "lease_seconds": LEASE_SECONDS,
                        "max_attempts": MAX_ATTEMPTS, "retry_base_seconds": 0.5}}
    env = dict(os.environ, FHIR_BRIDGE_DATABASE_URL=database_url,
               FHIR_BRIDGE_SYNC__TARGETS=json.dumps(target), FHIR_BRIDGE_SYNC__TARGET="crash")
    first = subprocess.Popen(push_command(), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and first.poll() is None:
            if done_rows(bridge.engine) >= 30 and waiting_on_a_lease(bridge.engine):
                break
            time.sleep(0.02)
    finally:
        first.kill()  # SIGKILL: its claims stay leased for LEASE_SECONDS
        first.wait(timeout=30)
    assert first.returncode == -9, "the first push must die mid-run, not finish"
    assert waiting_on_a_lease(bridge.engine), "the dead worker holds what others point at"
    assert 0 < done_rows(bridge.engine) < total

    second = subprocess.run(push_command(), env=env, capture_output=True, text=True,
                            timeout=300)
    assert second.stdout.startswith("{"), second.stderr[-3000:]
    report = json.loads(second.stdout)
    assert report["dead"] == 0 and report["waiting"] > 0, (report, second.stderr[-2000:])
    assert outbox.status_counts(bridge.engine).get("dead", 0) == 0

    # Later passes (once the lease has run out) send what waited: drain() fails on any
    # dead-lettered or conflicting row.
    pusher = make_pusher(bridge, hapi_url, worker="after", batch_size=10,
                         lease_seconds=LEASE_SECONDS, max_attempts=MAX_ATTEMPTS,
                         retry_base_seconds=0.5)
    drain(pusher, timeout=180)
    assert outbox.status_counts(bridge.engine) == {"done": total}
    with bridge.engine.connect() as conn:  # waiting counted no attempt
        attempts = conn.execute(sa.select(sa.func.max(t.outbox.c.attempts))).scalar()
    assert attempts == 0
    remote_ids: dict = {}
    seen = identifiers_on(hapi_url, remote_ids)
    assert [key for key, n in seen.items() if n > 1] == []
    assert Counter(key[0] for key in seen) == Counter(local_counts(bridge))
    assert remembered_identifiers(bridge.engine) == remote_ids  # each id went to its resource

