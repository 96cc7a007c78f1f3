"""Liveness (/healthz: the process answers and the database is reachable) and readiness
(/readyz: the database answers and its schema is the newest this code knows)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify

from ..store import heartbeats
from ..store.database import schema_state
from ..worker import heartbeat_seconds, settings_of

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    bridge = current_app.extensions["fhir_bridge"]
    with bridge.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return jsonify(status="ok", database=bridge.engine.dialect.name)


@bp.get("/readyz")
def readyz():
    """503 until the service can do its work: database reachable, migrations current."""
    bridge = current_app.extensions["fhir_bridge"]
    checks: dict[str, dict] = {}
    try:
        current, head = schema_state(bridge.engine)
    except sa.exc.SQLAlchemyError as exc:
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    else:
        checks["database"] = {"ok": True, "dialect": bridge.engine.dialect.name}
        checks["migrations"] = {"ok": current == head, "current": current, "head": head}
        checks["workers"] = _workers(bridge)
    ready = all(check["ok"] for check in checks.values())
    response = jsonify(status="ready" if ready else "not ready", checks=checks)
    response.status_code = 200 if ready else 503
    return response


def _workers(bridge) -> dict:
    """Workers heard from within three heartbeats are alive. Required for readiness only when
    config worker.required_for_ready is true (a deployment that runs `fhir-bridge worker`)."""
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    window = dt.timedelta(seconds=3 * heartbeat_seconds(bridge.config))
    with bridge.engine.connect() as conn:
        beats = heartbeats.listing(conn)
    listed = [{"worker": b.worker, "tasks": list(b.tasks), "state": b.state,
               "alive": b.state == "running" and now - b.beat_at <= window,
               "last_heartbeat": b.beat_at.isoformat(timespec="seconds"),
               **({"last_error": b.last_error} if b.last_error else {})} for b in beats]
    alive = sum(1 for w in listed if w["alive"])
    required = bool(settings_of(bridge.config).get("required_for_ready", False))
    return {"ok": alive > 0 or not required, "alive": alive, "required": required,
            "workers": listed}
