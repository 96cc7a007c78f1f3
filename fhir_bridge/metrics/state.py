"""Sync and subscription state read from the database at scrape time: outbox depth and age
by state, dead letters, conflicts, pull rejects, subscription backlog, and the running totals
the workers keep (store/counters.py) as counters."""

from __future__ import annotations

import datetime as dt
from typing import Iterator

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..store import counters
from ..store import tables as t
from ..store.records import as_utc

#: Running totals (store/counters.py) by name prefix: metric name, help, label for the rest.
TOTALS = {
    "push": ("fhir_bridge_sync_push_rows", "Outbox rows handled by push, by outcome"),
    "pull": ("fhir_bridge_sync_pull_resources", "Resources handled by pull, by outcome"),
    "delivery": ("fhir_bridge_subscription_deliveries",
                 "Subscription deliveries (handshakes, notifications, events, heartbeats, "
                 "failures)"),
}
#: ``<prefix>_ok`` marks a successful pass; its time is the last success.
LAST_SUCCESS = ("fhir_bridge_last_success_timestamp_seconds",
                "Unix time of the last successful push, pull or subscription delivery pass")


class StateCollector:
    def __init__(self, bridge) -> None:
        self.bridge = bridge

    def describe(self) -> list[Metric]:
        return []  # figures come from the database at scrape time only

    def collect(self) -> Iterator[Metric]:
        target = (self.bridge.config.get("sync") or {}).get("target") or "(none)"
        now = dt.datetime.now(dt.timezone.utc)
        with self.bridge.engine.connect() as conn:
            yield from _outbox(conn, target, now)
            yield from _conflicts_and_rejects(conn)
            yield from _subscriptions(conn)
            yield from _totals(counters.read_all(conn))


def _outbox(conn: sa.Connection, target: str, now: dt.datetime) -> Iterator[Metric]:
    o = t.outbox.c
    depth = GaugeMetricFamily("fhir_bridge_outbox_rows", "Outbox rows by state",
                              labels=["target", "state"])
    age = GaugeMetricFamily("fhir_bridge_outbox_oldest_age_seconds",
                            "Age of the oldest outbox row in each state (done excluded)",
                            labels=["target", "state"])
    found = {}
    for status, n, oldest in conn.execute(
            sa.select(o.status, sa.func.count(), sa.func.min(o.created_at)).group_by(o.status)):
        found[status] = (n, oldest)
    dead = 0
    for status in sorted(set(found) | {"pending", "dead", "conflict", "done"}):
        n, oldest = found.get(status, (0, None))
        depth.add_metric([target, status], n)
        if status != "done":
            seconds = (now - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
            age.add_metric([target, status], max(seconds, 0.0))
        if status == "dead":
            dead = n
    yield depth
    yield age
    letters = GaugeMetricFamily("fhir_bridge_dead_letters",
                                "Outbox rows given up after max_attempts, waiting for an "
                                "operator (sync retry-dead)", labels=["target"])
    letters.add_metric([target], dead)
    yield letters


def _conflicts_and_rejects(conn: sa.Connection) -> Iterator[Metric]:
    c = t.sync_conflicts.c
    conflicts = GaugeMetricFamily("fhir_bridge_sync_conflicts",
                                  "Sync conflicts by target and status",
                                  labels=["target", "status"])
    for target, status, n in conn.execute(
            sa.select(c.target, c.status, sa.func.count()).group_by(c.target, c.status)
            .order_by(c.target, c.status)):
        conflicts.add_metric([target, status], n)
    yield conflicts
    r = t.sync_rejects.c
    rejects = GaugeMetricFamily("fhir_bridge_sync_pull_rejects",
                                "Pulled resources held back because they could not be mapped",
                                labels=["target"])
    for target, n in conn.execute(sa.select(r.target, sa.func.count(sa.distinct(
            r.resource_type + "/" + r.remote_id))).group_by(r.target).order_by(r.target)):
        rejects.add_metric([target], n)
    yield rejects


def _subscriptions(conn: sa.Connection) -> Iterator[Metric]:
    s, d = t.subscriptions.c, t.subscription_delivery.c
    by_status = GaugeMetricFamily("fhir_bridge_subscriptions", "Subscriptions by status",
                                  labels=["status"])
    backlog = GaugeMetricFamily("fhir_bridge_subscription_backlog_events",
                                "Events recorded for a subscription and not yet delivered",
                                labels=["subscription"])
    failing = GaugeMetricFamily("fhir_bridge_subscription_consecutive_failures",
                                "Failed deliveries in a row per subscription",
                                labels=["subscription"])
    counts: dict[str, int] = {}
    rows = conn.execute(sa.select(s.id, s.status, s.event_count, d.delivered_through,
                                  d.attempts)
                        .select_from(t.subscriptions.outerjoin(
                            t.subscription_delivery, d.subscription_id == s.id))
                        .order_by(s.id))
    for sub_id, status, events, delivered, attempts in rows:
        counts[status] = counts.get(status, 0) + 1
        if status in ("active", "requested", "error"):
            backlog.add_metric([sub_id], max((events or 0) - (delivered or 0), 0))
            failing.add_metric([sub_id], attempts or 0)
    for status in sorted(counts):
        by_status.add_metric([status], counts[status])
    yield by_status
    yield backlog
    yield failing


def _totals(rows: list[counters.Counter]) -> Iterator[Metric]:
    families = {prefix: CounterMetricFamily(name, text, labels=["target", "outcome"])
                for prefix, (name, text) in TOTALS.items()}
    last = GaugeMetricFamily(*LAST_SUCCESS, labels=["target", "operation"])
    for row in rows:
        prefix, _, outcome = row.name.partition("_")
        if prefix not in families:
            continue
        if outcome == "ok":
            last.add_metric([row.scope, prefix], row.updated_at.timestamp())
        else:
            families[prefix].add_metric([row.scope, outcome], row.value)
    yield from families.values()
    yield last
