"""Requests by route and status, with a latency histogram. The route is the URL rule
(``/fhir/<resource_type>/<resource_id>``), never the path or the query: no identifier, name or
search value reaches a label."""

from __future__ import annotations

import time

from flask import Flask, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram

#: Seconds; the API's own work is milliseconds, a slow search or bundle import seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "(unmatched)"


def install(app: Flask, registry: CollectorRegistry) -> None:
    requests_total = Counter("fhir_bridge_http_requests", "HTTP requests answered",
                             ["method", "route", "status"], registry=registry)
    latency = Histogram("fhir_bridge_http_request_duration_seconds",
                        "Time from the request's arrival at the app to its answer",
                        ["method", "route"], buckets=BUCKETS, registry=registry)

    @app.before_request
    def _started():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _answered(response):
        started = g.pop("metrics_started", None)
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        method = request.method if request.method in _METHODS else "OTHER"
        requests_total.labels(method, route, str(response.status_code)).inc()
        if started is not None:
            latency.labels(method, route).observe(time.perf_counter() - started)
        return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
