"""Liveness: the process answers and the database is reachable."""

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    bridge = current_app.extensions["fhir_bridge"]
    with bridge.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    return jsonify(status="ok", database=bridge.engine.dialect.name)
