"""Nothing is lost or doubled when the server or the bridge's own worker dies mid-push.

These tests run their own HAPI instance (port 8091) that keeps its data in an H2 file, so it
can be killed with SIGKILL and restarted with what it had committed."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from fhir_bridge import PROJECT_ROOT
from fhir_bridge.cli import load_demo
from fhir_bridge.store import outbox
from fhir_bridge.store import tables as t

from .conftest import HAPI_URL, expunge
from .test_sync_push_hapi import TYPES, local_counts, make_pusher

pytestmark = pytest.mark.hapi
SCRIPT = PROJECT_ROOT / "scripts" / "hapi-server"
PORT = 8091
BASE = f"http://127.0.0.1:{PORT}/fhir"


def hapi(command: str, data_dir: Path) -> None:
    env = dict(os.environ, HAPI_PORT=str(PORT), HAPI_DATA_DIR=str(data_dir))
    subprocess.run([str(SCRIPT), command], env=env, check=True, timeout=400,
                   stdout=subprocess.DEVNULL)


def hapi_pid() -> int:
    return int((PROJECT_ROOT / ".run" / f"hapi-{PORT}" / "hapi.pid").read_text())


@pytest.fixture(scope="module")
def durable_hapi(tmp_path_factory):
    if not HAPI_URL:
        if os.environ.get("CI"):
            pytest.fail("the HAPI test server must be buildable in CI")
        pytest.skip("HAPI not configured (scripts/hapi-server start)")
    data_dir = tmp_path_factory.mktemp("hapi-data")
    hapi("start", data_dir)
    yield data_dir
    hapi("stop", data_dir)


@pytest.fixture
def empty_durable_hapi(durable_hapi):
    expunge(BASE)
    return durable_hapi


def identifiers_on(base_url: str, ids: dict | None = None) -> Counter:
    """(type, system, value) -> how many resources on the server carry it; ``ids`` collects
    (type, remote id) -> identifier value."""
    seen = Counter()
    for rtype in TYPES:
        url = f"{base_url}/{rtype}?_count=500&_elements=identifier"
        while url:
            page = requests.get(url, headers={"Cache-Control": "no-cache"}, timeout=60).json()
            for entry in page.get("entry", []):
                identifier = entry["resource"]["identifier"][0]
                seen[(rtype, identifier["system"], identifier["value"])] += 1
                if ids is not None:
                    ids[(rtype, entry["resource"]["id"])] = identifier["value"]
            url = next((link["url"] for link in page.get("link", [])
                        if link["relation"] == "next"), None)
    return seen


def assert_everything_once(bridge) -> None:
    seen = identifiers_on(BASE)
    doubled = [key for key, n in seen.items() if n > 1]
    assert doubled == []
    assert Counter(key[0] for key in seen) == Counter(local_counts(bridge))


def drain(pusher, timeout: float = 120) -> None:
    """Push until the outbox is empty (retries come due after a short backoff)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pusher.push_all()
        counts = outbox.status_counts(pusher.engine)
        assert counts.get("dead", 0) == 0 and counts.get("conflict", 0) == 0, \
            (counts, [row["last_error"] for row in outbox.listing(pusher.engine, "dead")[:3]])
        if counts.get("pending", 0) == 0:
            return
        time.sleep(0.3)
    raise AssertionError(f"outbox not drained: {outbox.status_counts(pusher.engine)}")


def done_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(t.outbox)
                            .where(t.outbox.c.status == "done")).scalar()


def test_hapi_killed_mid_push_then_restarted_ends_with_every_resource_once(
        sqlite_app, empty_durable_hapi):
    bridge = sqlite_app.extensions["fhir_bridge"]
    load_demo(sqlite_app)
    pusher = make_pusher(bridge, BASE, batch_size=10, retry_base_seconds=0.2,
                         max_attempts=50)
    worker = threading.Thread(target=pusher.push_all, daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    while done_rows(bridge.engine) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(hapi_pid(), signal.SIGKILL)  # mid-push: bundles in flight fail or lose answers
    worker.join(timeout=120)
    assert outbox.status_counts(bridge.engine).get("pending", 0) > 0  # work waits, not lost
    hapi("start", empty_durable_hapi)
    drain(pusher)
    assert_everything_once(bridge)


def test_a_worker_killed_mid_push_leaves_nothing_lost_or_doubled(tmp_path, empty_durable_hapi):
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    overrides = {"FHIR_BRIDGE_DATABASE_URL": url,
                 "FHIR_BRIDGE_SYNC__TARGETS": "{durable: {base_url: '%s', batch_size: 10, "
                                              "lease_seconds: 2}}" % BASE,
                 "FHIR_BRIDGE_SYNC__TARGET": "durable"}
    env = dict(os.environ, **overrides)
    subprocess.run([sys.executable, "-m", "fhir_bridge.cli", "demo"], env=env, check=True,
                   capture_output=True, timeout=120)
    from fhir_bridge.app import create_app

    app = create_app({"database_url": url})
    bridge = app.extensions["fhir_bridge"]
    worker = subprocess.Popen([sys.executable, "-m", "fhir_bridge.cli", "sync", "push"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while done_rows(bridge.engine) < 30 and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.kill()  # SIGKILL: claimed rows stay claimed until their lease runs out
    worker.wait(timeout=30)
    assert 0 < done_rows(bridge.engine) < sum(local_counts(bridge).values())
    time.sleep(2.5)  # the dead worker's lease expires
    pusher = make_pusher(bridge, BASE, batch_size=10, retry_base_seconds=0.2)
    drain(pusher)
    assert_everything_once(bridge)
    bridge.engine.dispose()
