"""Operator metrics: /metrics in the Prometheus text format (docs/operations.md).

Request counts and latencies are measured in this process (http.py); everything about sync
and subscriptions is read from the database at scrape time (state.py), so the figures are
the same whichever process is scraped and whichever worker did the work."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from . import http, state

EXTENSION = "fhir_bridge_metrics"
bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    registry = current_app.extensions[EXTENSION]
    return Response(generate_latest(registry),
                    headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


def install(app: Flask) -> None:
    """One registry per app (tests build many apps in one process)."""
    registry = CollectorRegistry(auto_describe=True)
    http.install(app, registry)
    registry.register(state.StateCollector(app.extensions["fhir_bridge"]))
    app.extensions[EXTENSION] = registry
    app.register_blueprint(bp)
