"""`fhir-bridge worker`: one process that runs the background work on a schedule: push the
outbox, pull changes, deliver subscription notifications, run Bulk Data export jobs, mark
overdue monitoring items.

Any number of workers may run against one PostgreSQL (on one or several machines): push and
delivery take disjoint work with leases (SKIP LOCKED), and so does pull, per patient
(store/leases.py), so a second worker adds throughput and a dead one's work returns after its
lease. A worker writes a heartbeat (/readyz lists it) and
adds what it did to the running totals /metrics shows. On SIGTERM or SIGINT it finishes the
step in hand (the push batch in flight, the subscription being delivered, the resource type
of the patient being pulled), claims nothing more, releases its leases and says it
stopped."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

log = logging.getLogger(__name__)

TASKS = ("push", "pull", "subscriptions", "bulk", "monitoring")
#: Seconds between runs of each task (config worker.<task>_interval_seconds).
DEFAULT_INTERVALS = {"push": 5.0, "pull": 300.0, "subscriptions": 2.0, "bulk": 5.0,
                     "monitoring": 3600.0}
DEFAULT_HEARTBEAT = 15.0


def settings_of(config: Mapping[str, Any]) -> dict[str, Any]:
    return dict(config.get("worker") or {})


def heartbeat_seconds(config: Mapping[str, Any]) -> float:
    return float(settings_of(config).get("heartbeat_seconds", DEFAULT_HEARTBEAT))


@dataclass
class TaskState:
    name: str
    interval: float
    due: float = 0.0  # time.monotonic() when it runs next
    runs: int = 0
    failures: int = 0


@dataclass
class WorkerReport:
    runs: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)


class Worker:
    def __init__(self, bridge, name: str, tasks: tuple[str, ...] = TASKS,
                 target: str | None = None, clock: Callable[[], dt.datetime] | None = None):
        unknown = set(tasks) - set(TASKS)
        if unknown or not tasks:
            raise ValueError(f"worker tasks are {', '.join(TASKS)}; not {sorted(unknown)}")
        self.bridge, self.name, self.target = bridge, name, target
        self.tasks = tuple(t for t in TASKS if t in tasks)
        settings = settings_of(bridge.config)
        self.states = [TaskState(t, float(settings.get(f"{t}_interval_seconds",
                                                       DEFAULT_INTERVALS[t])))
                       for t in self.tasks]
        self.heartbeat = heartbeat_seconds(bridge.config)
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.stop = threading.Event()
        self.started_at = self.clock()
        self.last_error: str | None = None
        self._pusher = self._puller = self._deliverer = self._exporter = None

    # -- the loop ---------------------------------------------------------------------------

    def run(self, max_cycles: int | None = None) -> WorkerReport:
        """Run until stopped (or ``max_cycles`` passes over the due tasks, for --once)."""
        cycles = 0
        self._beat()
        try:
            while not self.stop.is_set():
                self._run_due()
                cycles += 1
                self._beat()
                if max_cycles is not None and cycles >= max_cycles:
                    break
                self.stop.wait(self._sleep())
        finally:
            self.close()
            self._beat(state="stopped")
        return WorkerReport({s.name: s.runs for s in self.states},
                            {s.name: s.failures for s in self.states})

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT end the loop after the step in hand (main thread only)."""
        def ask_to_stop(signum, _frame):
            log.info("worker %s: signal %s, stopping after the step in hand", self.name, signum)
            self.stop.set()

        signal.signal(signal.SIGTERM, ask_to_stop)
        signal.signal(signal.SIGINT, ask_to_stop)

    def _sleep(self) -> float:
        now = time.monotonic()
        soonest = min(s.due for s in self.states)
        return max(0.0, min(soonest - now, self.heartbeat))

    def _run_due(self) -> None:
        for state in self.states:
            if self.stop.is_set():
                return
            if time.monotonic() < state.due:
                continue
            try:
                getattr(self, f"_{state.name}")()
            except Exception as exc:  # noqa: BLE001 - a failed task must not end the worker
                state.failures += 1
                self.last_error = f"{state.name}: {type(exc).__name__}"
                # the class only: messages may quote a server's answer or a record
                log.warning("worker %s: %s failed (%s)", self.name, state.name,
                            type(exc).__name__)
            state.runs += 1
            state.due = time.monotonic() + state.interval

    def _beat(self, state: str = "running") -> None:
        from .store import heartbeats

        try:
            heartbeats.beat(self.bridge.engine, self.name, self.tasks, self.started_at,
                            self.clock(), state, self.last_error)
        except Exception as exc:  # noqa: BLE001 - the database may be down: try next time
            log.warning("worker %s: heartbeat failed (%s)", self.name, type(exc).__name__)

    # -- the tasks --------------------------------------------------------------------------

    def _push(self) -> None:
        from .sync import service

        if self._pusher is None:  # made on first use: the target may be down at start
            self._pusher = service.pusher_for(self.bridge, self.target, self.name)
        self._pusher.push_all(stop=self.stop)

    def _pull(self) -> None:
        from .sync import service

        if self._puller is None:
            self._puller = service.puller_for(self.bridge, self.target, worker=self.name)
        self._puller.pull(stop=self.stop)

    def _subscriptions(self) -> None:
        from .subscriptions.worker import Deliverer

        if self._deliverer is None:
            self._deliverer = Deliverer(self.bridge.engine, self.bridge.config,
                                        worker=self.name)
        while not self.stop.is_set() and self._deliverer.run_once().claimed:
            pass

    def _bulk(self) -> None:
        from .bulk.worker import Exporter

        if self._exporter is None:
            self._exporter = Exporter(self.bridge.engine, self.bridge.config)
        while not self.stop.is_set() and self._exporter.run_once() is not None:
            pass  # one job after another while there are any

    def _monitoring(self) -> None:
        from zoneinfo import ZoneInfo

        from .clinical.overdue import check_overdue

        zone = ZoneInfo(self.bridge.config.get("default_timezone") or "UTC")
        check_overdue(self.bridge.store, self.clock().astimezone(zone).date())

    def close(self) -> None:
        """Close the HTTP clients the tasks opened."""
        for user in (self._pusher, self._puller):
            if user is not None:
                user.client.close()
        if self._deliverer is not None:
            self._deliverer.sender.close()
        self._pusher = self._puller = self._deliverer = self._exporter = None
