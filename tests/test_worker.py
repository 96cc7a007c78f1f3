"""`fhir-bridge worker`: runs the background tasks on a schedule, keeps going when one fails,
says it is alive (/readyz), and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import sqlalchemy as sa

from fhir_bridge.app import create_app
from fhir_bridge.store import heartbeats
from fhir_bridge.store import tables as t
from fhir_bridge.worker import Worker


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


def test_sigterm_stops_the_worker_cleanly(tmp_path):
    db = tmp_path / "worker.db"
    env = dict(os.environ, FHIR_BRIDGE_DATABASE_URL=f"sqlite:///{db}",
               FHIR_BRIDGE_WORKER__HEARTBEAT_SECONDS="0.2",
               FHIR_BRIDGE_WORKER__SUBSCRIPTIONS_INTERVAL_SECONDS="0.1")
    process = subprocess.Popen([sys.executable, "-m", "fhir_bridge.cli", "worker", "--task",
                                "subscriptions", "--name", "w-sig"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        deadline = time.monotonic() + 60
        state = None
        while time.monotonic() < deadline and state != "running":
            time.sleep(0.2)
            try:
                with engine.connect() as conn:
                    state = conn.execute(sa.select(t.worker_heartbeats.c.state).where(
                        t.worker_heartbeats.c.worker == "w-sig")).scalar()
            except sa.exc.OperationalError:
                continue  # the worker is still creating the database
        assert state == "running", process.stderr.read() if process.poll() else "no beat"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "stopped" in stderr
    with engine.connect() as conn:
        assert conn.execute(sa.select(t.worker_heartbeats.c.state).where(
            t.worker_heartbeats.c.worker == "w-sig")).scalar() == "stopped"
    engine.dispose()
