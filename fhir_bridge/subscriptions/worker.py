"""The delivery worker: handshake, then every event in order, heartbeats when idle.

``Deliverer.run_once()`` is one pass (tests call it with an injectable clock and random
source); ``Deliverer.run_forever(stop)`` loops; ``start_background(bridge)`` runs the loop in
a daemon thread (``fhir-bridge serve`` does, see docs/subscriptions.md).

Per claimed subscription: a handshake first if none succeeded yet (success makes the
subscription ``active``); then notifications for events ``delivered_through + 1`` onwards,
``max_count`` events each; with nothing to send and the heartbeat period passed, a heartbeat.
A failure (no connection, timeout, a status other than 2xx) stops that subscription for this
pass: status ``error``, the same notification is retried after exponential backoff with
jitter (``retry_base_seconds * 2^(attempts-1)``, at most ``retry_cap_seconds``, then a random
point in its upper half); the first success makes it ``active`` again and delivery continues
with the next event. Nothing is skipped and nothing is sent twice, except when a worker dies
between the receiver's answer and its own commit (then that notification is sent again, with
the same event numbers, so receivers can tell).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import sqlalchemy as sa

from ..audit import AuditEntry
from ..errors import BridgeError
from ..facade.urls import fhir_base
from ..fhir import jsonio
from ..store import counters
from ..store.records import utcnow
from . import queue, repository
from .notify import notification_bundle
from .repository import Event, StoredSubscription
from .resource import SubscriptionSpec, spec_from_stored
from .sender import RestHookSender, SendResult

log = logging.getLogger("fhir_bridge.subscriptions.worker")

AGENT = "subscription-worker"


@dataclass
class PassReport:
    claimed: int = 0
    handshakes: int = 0
    notifications: int = 0
    events: int = 0
    heartbeats: int = 0
    failures: int = 0

    def totals(self) -> dict[str, int]:
        """What this pass adds to the running totals (store/counters.py, /metrics)."""
        amounts = {f"delivery_{name}": getattr(self, name) for name in
                   ("handshakes", "notifications", "events", "heartbeats", "failures")}
        if self.notifications or self.heartbeats or self.handshakes:
            amounts["delivery_ok"] = 1
        return amounts


def settings_of(config: Mapping[str, Any]) -> dict[str, Any]:
    return dict(config.get("subscriptions") or {})


def backoff(attempts: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds before retry number ``attempts``: exponential, capped, jittered in the upper
    half (so the wait grows but workers do not retry in lockstep)."""
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class Deliverer:
    def __init__(self, engine: sa.Engine, config: Mapping[str, Any],
                 sender: RestHookSender | None = None, worker: str | None = None,
                 clock: Callable[[], dt.datetime] = utcnow, rng: random.Random | None = None):
        self.engine = engine
        self.config = config
        self.settings = settings_of(config)
        self.base = fhir_base(config)
        self.sender = sender or RestHookSender(
            verify=self.settings.get("verify_tls", True),
            default_timeout=float(self.settings.get("request_timeout_seconds", 10)),
            max_timeout=float(self.settings.get("max_timeout_seconds", 60)))
        self.worker = worker or f"{socket.gethostname()}:{uuid.uuid4().hex[:6]}"
        self.clock = clock
        self.rng = rng or random.Random()
        self.lease = float(self.settings.get("lease_seconds", 120))
        self.retry_base = float(self.settings.get("retry_base_seconds", 2))
        self.retry_cap = float(self.settings.get("retry_cap_seconds", 600))
        self.per_pass = int(self.settings.get("notifications_per_pass", 50))
        self.batch = int(self.settings.get("subscriptions_per_pass", 20))

    # -- passes ------------------------------------------------------------------------------

    def run_once(self) -> PassReport:
        """One pass: claim the subscriptions with something due and deliver them."""
        report = PassReport()
        token = f"{self.worker}:{uuid.uuid4().hex[:8]}"[:80]
        ids = queue.claim(self.engine, token, self.clock(), self.lease, self.batch)
        report.claimed = len(ids)
        try:
            for sub_id in ids:
                try:
                    self._deliver(token, sub_id, report)
                except queue.LeaseLost:
                    log.warning("subscription %s: lease lost, another worker has it", sub_id)
        finally:
            queue.release(self.engine, token)
            counters.add(self.engine, "subscriptions", report.totals())
        return report

    def run_forever(self, stop: threading.Event, poll_seconds: float | None = None) -> None:
        poll = float(poll_seconds if poll_seconds is not None
                     else self.settings.get("poll_seconds", 1))
        while not stop.is_set():
            try:
                report = self.run_once()
            except Exception as exc:  # a database hiccup must not end the loop
                log.error("delivery pass failed: %s", type(exc).__name__)
                report = PassReport()
            if report.claimed == 0:
                stop.wait(poll)

    # -- one subscription --------------------------------------------------------------------

    def _deliver(self, token: str, sub_id: str, report: PassReport) -> None:
        sub = repository.get(self.engine, sub_id)
        state = queue.state(self.engine, sub_id, token)
        try:
            spec = spec_from_stored(sub.content, self.settings)
        except BridgeError as exc:  # e.g. the endpoint left the allow-list
            reason = "; ".join(f"{i.path}: {i.message}" for i in exc.issues)[:150]
            self._failed(token, sub, state, SendResult(False, None, "not deliverable", 0),
                         [], "channel", spec=None, detail=reason)
            report.failures += 1
            return
        if not state.handshake_done:
            result = self._send(sub, spec, "handshake", [])
            if not result.ok:
                self._failed(token, sub, state, result, [], "handshake", spec)
                report.failures += 1
                return
            queue.succeeded(self.engine, token, sub_id, self.clock(), self.lease,
                            spec.heartbeat, self._audit(sub, spec, [], "handshake", result),
                            handshake=True)
            report.handshakes += 1
        delivered = state.delivered_through
        sent = 0
        while sent < self.per_pass:
            with self.engine.connect() as conn:
                batch = repository.events(conn, sub_id, delivered + 1,
                                          delivered + spec.max_count)
            if not batch:
                break
            sub = repository.get(self.engine, sub_id)
            result = self._send(sub, spec, "event-notification", batch)
            if not result.ok:
                state = queue.state(self.engine, sub_id, token)
                self._failed(token, sub, state, result, batch, "event-notification", spec)
                report.failures += 1
                return
            delivered = batch[-1].number
            queue.succeeded(self.engine, token, sub_id, self.clock(), self.lease,
                            spec.heartbeat,
                            self._audit(sub, spec, batch, "event-notification", result),
                            delivered_through=delivered)
            sent += 1
            report.notifications += 1
            report.events += len(batch)
        if sent == 0 and spec.heartbeat and spec.kind == "topic":
            state = queue.state(self.engine, sub_id, token)
            if state.handshake_done and state.heartbeat_due_at is not None \
                    and state.heartbeat_due_at <= self.clock():
                sub = repository.get(self.engine, sub_id)
                result = self._send(sub, spec, "heartbeat", [])
                if not result.ok:
                    self._failed(token, sub, state, result, [], "heartbeat", spec)
                    report.failures += 1
                    return
                queue.succeeded(self.engine, token, sub_id, self.clock(), self.lease,
                                spec.heartbeat,
                                self._audit(sub, spec, [], "heartbeat", result))
                report.heartbeats += 1

    def _failed(self, token: str, sub: StoredSubscription, state: queue.DeliveryState,
                result: SendResult, batch: list[Event], kind: str,
                spec: SubscriptionSpec | None, detail: str | None = None) -> None:
        attempts = state.attempts + 1
        delay = backoff(attempts, self.retry_base, self.retry_cap, self.rng)
        error = result.error or "failed"
        log.info("subscription %s: %s failed (%s), attempt %d, retry in %.1f s", sub.id, kind,
                 error, attempts, delay)
        entries = self._audit(sub, spec, batch, kind, result, detail)
        queue.failed(self.engine, token, sub.id, self.clock(), attempts, delay,
                     f"{error}: {detail}" if detail else error, entries)

    # -- sending -----------------------------------------------------------------------------

    def _send(self, sub: StoredSubscription, spec: SubscriptionSpec, kind: str,
              batch: list[Event]) -> SendResult:
        if spec.kind == "criteria":
            return self._send_r4(spec, kind, batch)
        versions = {}
        if spec.content == "full-resource" and batch:
            with self.engine.connect() as conn:
                versions = repository.versions(
                    conn, [ref for e in batch for ref in (e.focus, *e.context)])
        status = "requested" if kind == "handshake" else sub.status
        bundle = notification_bundle(sub, kind, batch, spec.content, self.base, self.clock(),
                                     versions, status=status)
        return self.sender.send("POST", spec.endpoint, jsonio.dumpb(bundle), spec.payload,
                                spec.headers, spec.timeout)

    def _send_r4(self, spec: SubscriptionSpec, kind: str, batch: list[Event]) -> SendResult:
        """Plain R4 rest-hook: without payload an empty POST to the endpoint (also the
        handshake); with payload the resource is PUT to <endpoint>/<type>/<id>."""
        if kind != "event-notification" or spec.payload is None:
            return self.sender.send("POST", spec.endpoint, None, None, spec.headers,
                                    spec.timeout)
        focus = batch[0].focus
        with self.engine.connect() as conn:
            resource = repository.versions(conn, [focus]).get(
                (focus.type, focus.id, focus.version))
        url = f"{spec.endpoint.rstrip('/')}/{focus.type}/{focus.id}"
        return self.sender.send("PUT", url, jsonio.dumpb(resource), spec.payload,
                                spec.headers, spec.timeout)

    def _audit(self, sub: StoredSubscription, spec: SubscriptionSpec | None,
               batch: list[Event], kind: str, result: SendResult,
               detail: str | None = None) -> list[AuditEntry]:
        """One AuditEvent per patient whose data the notification carried (a disclosure);
        handshakes and heartbeats name the subscription only."""
        outcome = "0" if result.ok else "4"
        description = kind if result.ok else f"{kind}: {result.error}"
        if detail:
            description = f"{description} ({detail})"[:200]
        host = urlsplit(spec.endpoint).hostname if spec is not None else None
        groups: dict[tuple[str | None, str | None], list[Event]] = {}
        for event in batch:
            groups.setdefault((event.patient_id, event.patient_reference), []).append(event)
        if not groups:
            groups[(None, None)] = []
        entries = []
        for (patient_id, patient_reference), events in groups.items():
            entities = [f"Subscription/{sub.id}"]
            if spec is None or spec.content != "empty":
                entities += [ref.reference for e in events for ref in (e.focus, *e.context)]
            numbers = [e.number for e in events]
            text = description if not numbers else \
                f"{description} #{numbers[0]}" + (f"-{numbers[-1]}" if len(numbers) > 1 else "")
            entries.append(AuditEntry(action="R", subtype="notify", kind="transmit",
                                      outcome=outcome, agent=f"{AGENT} {self.worker}"[:200],
                                      patient_id=patient_id,
                                      patient_reference=patient_reference,
                                      entities=entities, description=text[:200],
                                      network_address=host))
        return entries


def start_background(bridge, poll_seconds: float | None = None) -> tuple[threading.Thread,
                                                                         threading.Event]:
    """Run the delivery loop in a daemon thread; set the returned Event to stop it."""
    stop = threading.Event()
    deliverer = Deliverer(bridge.engine, bridge.config)
    thread = threading.Thread(target=deliverer.run_forever, args=(stop, poll_seconds),
                              name="subscription-delivery", daemon=True)
    thread.start()
    return thread, stop
