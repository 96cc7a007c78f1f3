"""`fhir-bridge worker`: runs the background tasks on a schedule, keeps going when one fails,
says it is alive (/readyz), and stops cleanly on SIGTERM: within its grace period, holding no
lease (no outbox row claimed for push, no patient leased for pull)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from fhir_bridge.app import create_app
from fhir_bridge.cli import load_demo
from fhir_bridge.store import heartbeats, leases
from fhir_bridge.store import tables as t
from fhir_bridge.store.records import utcnow
from fhir_bridge.worker import Worker

#: How long a worker may take from SIGTERM to its exit: the step in hand (one bundle, one
#: resource type of one patient, one subscription), then nothing more.
GRACE_SECONDS = 20


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def beats(bridge) -> dict:
    with bridge.engine.connect() as conn:
        return {b.worker: b for b in heartbeats.listing(conn)}


def test_one_pass_runs_each_task_and_leaves_a_stopped_heartbeat(app):
    bridge = app.extensions["fhir_bridge"]
    report = Worker(bridge, "w-once", ("subscriptions", "monitoring")).run(max_cycles=1)
    assert report.runs == {"subscriptions": 1, "monitoring": 1}
    assert report.failures == {"subscriptions": 0, "monitoring": 0}
    beat = beats(bridge)["w-once"]
    assert beat.state == "stopped" and beat.tasks == ("subscriptions", "monitoring")


def test_a_failing_task_is_counted_and_the_worker_goes_on(app, client):
    """The push target is a closed loopback port: push fails, monitoring still runs, and the
    heartbeat names the failure by its class only."""
    bridge = app.extensions["fhir_bridge"]
    bridge.config["sync"] = dict(bridge.config["sync"], target="gone", targets={
        "gone": {"base_url": f"http://127.0.0.1:{closed_port()}/fhir"}})
    report = Worker(bridge, "w-fail", ("push", "monitoring")).run(max_cycles=1)
    assert report.failures == {"push": 1, "monitoring": 0}
    assert report.runs == {"push": 1, "monitoring": 1}
    beat = beats(bridge)["w-fail"]
    assert beat.last_error.startswith("push: ") and "127.0.0.1" not in beat.last_error


def test_the_bulk_exporter_is_made_once_and_kept_from_run_to_run(sqlite_app):
    """Like the pusher and the deliverer: one per worker, not a new one (and a new exporter
    name in the job table) on every run of the task."""
    worker = Worker(sqlite_app.extensions["fhir_bridge"], "w-bulk", ("bulk",))
    worker._bulk()
    first = worker._exporter
    worker._bulk()
    assert first is not None and worker._exporter is first
    worker.close()
    assert worker._exporter is None


def test_readyz_lists_workers_and_can_require_one(tmp_path):
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'r.db'}",
                      "worker": {"required_for_ready": True, "heartbeat_seconds": 60}})
    web = app.test_client()
    response = web.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["workers"] == {"ok": False, "alive": 0,
                                                       "required": True, "workers": []}
    bridge = app.extensions["fhir_bridge"]
    worker = Worker(bridge, "w-live", ("monitoring",))
    worker._beat()  # what the loop does between passes
    response = web.get("/readyz")
    assert response.status_code == 200
    listed = response.get_json()["checks"]["workers"]["workers"]
    assert [(w["worker"], w["state"], w["alive"]) for w in listed] == [
        ("w-live", "running", True)]
    worker._beat(state="stopped")
    assert web.get("/readyz").status_code == 503


def worker_env(database_url: str, hapi_url: str | None = None, lease_seconds: float = 60,
               batch_size: int = 10, page_size: int = 4, **settings: str) -> dict:
    """The environment of a `fhir-bridge worker` process; with ``hapi_url``, pushing to and
    pulling from it as target "hapi" (small batches and pages: many steps to stop between).
    ``settings``: more FHIR_BRIDGE_WORKER__* values, e.g. push_interval_seconds="0.2"."""
    env = dict(os.environ, FHIR_BRIDGE_DATABASE_URL=database_url,
               FHIR_BRIDGE_WORKER__HEARTBEAT_SECONDS="0.2",
               **{f"FHIR_BRIDGE_WORKER__{k.upper()}": v for k, v in settings.items()})
    if hapi_url is not None:
        env.update(FHIR_BRIDGE_SYNC__TARGET="hapi", FHIR_BRIDGE_SYNC__PULL_PAGE_SIZE=str(page_size),
                   FHIR_BRIDGE_SYNC__TARGETS=json.dumps({"hapi": {
                       "base_url": hapi_url, "batch_size": batch_size,
                       "lease_seconds": lease_seconds,
                       "max_attempts": 2, "retry_base_seconds": 0.5}}))
    return env


def start_worker(name: str, tasks: tuple[str, ...], env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "fhir_bridge.cli", "worker", "--name", name]
    for task in tasks:
        command += ["--task", task]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float, what: str, every: float = 0.02,
             detail=lambda: "") -> None:
    """Poll ``condition`` (database errors count as not yet: a worker may still be creating
    the database); ``detail`` says what there is instead, when it times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except sa.exc.OperationalError:
            pass
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}: {detail()}")


def kill_9(process: subprocess.Popen) -> int:
    """SIGKILL: the worker gets no chance to give anything back."""
    process.kill()
    process.communicate(timeout=30)
    return process.returncode


def stop_within_grace(process: subprocess.Popen) -> str:
    """SIGTERM, and the exit (0) within the grace period; its stderr."""
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=GRACE_SECONDS)
    assert process.returncode == 0, stderr[-3000:]
    return stderr


def outbox_claims(engine, worker: str = "") -> int:
    """Outbox rows under a live lease (of one worker, by its name)."""
    o = t.outbox
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(o).where(
            o.c.status == "pending", o.c.claimed_by.like(f"{worker}%"),
            o.c.claimed_until > utcnow())).scalar()


def pull_leases_of(engine, worker: str = "") -> list:
    return [lease for lease in leases.held(engine) if lease[2].startswith(worker)]


def state_of(engine, worker: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(sa.select(t.worker_heartbeats.c.state).where(
            t.worker_heartbeats.c.worker == worker)).scalar()


def test_sigterm_stops_the_worker_cleanly(tmp_path):
    db = f"sqlite:///{tmp_path / 'worker.db'}"
    process = start_worker("w-sig", ("subscriptions",),
                           worker_env(db, subscriptions_interval_seconds="0.1"))
    engine = sa.create_engine(db)
    try:
        wait_for(lambda: state_of(engine, "w-sig") == "running", 60, "a running heartbeat",
                 every=0.2)
        stderr = stop_within_grace(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "stopped" in stderr
    assert state_of(engine, "w-sig") == "stopped"
    engine.dispose()


@pytest.mark.hapi
def test_sigterm_while_pushing_or_pulling_leaves_no_lease_held(app, database_url, hapi_url):
    """SIGTERM once while a push worker holds outbox rows, then (the patients it pushed are
    managed now) while a pull worker holds a patient's pull lease: each time it exits within
    its grace period and holds nothing. The leases are long (60 s): only a release, not their running out, frees them."""
    bridge = app.extensions["fhir_bridge"]
    load_demo(app)
    env = worker_env(database_url, hapi_url, push_interval_seconds="0.1",
                     pull_interval_seconds="0.1")
    for moment, task, holding in (("pushing", "push", outbox_claims),
                                  ("pulling", "pull", pull_leases_of)):
        process = start_worker("w-term", (task,), env)
        try:
            wait_for(lambda: holding(bridge.engine, "w-term:"), 90, f"the worker {moment}")
            stop_within_grace(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        assert outbox_claims(bridge.engine) == 0 and pull_leases_of(bridge.engine) == [], \
            moment
        assert state_of(bridge.engine, "w-term") == "stopped"
