"""Background work: the worker, subscription delivery, monitoring checks."""

from __future__ import annotations

import sys

from ..progress import Progress
from .common import open_bridge, print_json, today as day_to_check


def cmd_worker(args) -> int:
    """Run the background tasks on their schedule until SIGTERM/SIGINT (or one pass: --once)."""
    from dataclasses import asdict

    from ..sync.service import default_worker
    from ..worker import TASKS, Worker

    worker = Worker(open_bridge(), args.name or default_worker(), tuple(args.task or TASKS),
                    args.target)
    if args.once:
        print_json(asdict(worker.run(max_cycles=1)))
        return 0
    worker.install_signal_handlers()
    print(f"worker {worker.name}: running {', '.join(worker.tasks)}; SIGTERM stops it",
          file=sys.stderr, flush=True)
    report = worker.run()
    print(f"worker {worker.name}: stopped ({sum(report.runs.values())} task runs, "
          f"{sum(report.failures.values())} failed)", file=sys.stderr)
    return 0


def cmd_subscriptions(args) -> int:
    """Deliver subscription notifications: one pass (--once) or until interrupted."""
    import threading
    from dataclasses import asdict

    from ..subscriptions.worker import Deliverer

    bridge = open_bridge()
    deliverer = Deliverer(bridge.engine, bridge.config, worker=args.worker)
    if args.once:
        print_json(asdict(deliverer.run_once()))
        return 0
    stop = threading.Event()
    try:
        deliverer.run_forever(stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


def cmd_monitoring(args) -> int:
    bridge = open_bridge()
    today = day_to_check(args.now, bridge.config.get("default_timezone") or "UTC")
    from ..clinical.overdue import check_overdue

    bar = Progress("monitoring check", "care plans")
    found = check_overdue(bridge.store, today,
                          lambda plans, items: bar.update(plans, f"{items} newly overdue"))
    bar.finish(bar.last_done, f"{len(found)} newly overdue")
    print_json({"today": today.isoformat(), "newly_overdue": found})
    return 0


def register(sub) -> None:
    worker = sub.add_parser(
        "worker", help="run push, pull, subscription delivery, bulk export and monitoring "
                       "checks on a schedule",
        description="Run the background tasks on their schedule (config worker.*) until "
                    "SIGTERM or SIGINT, which finish the step in hand first; heartbeats go to "
                    "/readyz (docs/operations.md).")
    worker.add_argument("--task", action="append", choices=["push", "pull", "subscriptions",
                                                            "bulk", "monitoring"],
                        help="run only this task (repeatable; default: all)")
    worker.add_argument("--target", help="push/pull: a profile of config sync.targets")
    worker.add_argument("--name", help="this worker's name (default host:random)")
    worker.add_argument("--once", action="store_true", help="run each task once, then exit")
    worker.set_defaults(func=cmd_worker)
    subs = sub.add_parser("subscriptions", help="deliver subscription notifications")
    subs_actions = subs.add_subparsers(dest="action", required=True, metavar="ACTION")
    deliver = subs_actions.add_parser(
        "deliver", help="send what is due to each subscriber",
        description="Deliver subscription notifications (handshakes, events, heartbeats): one "
                    "pass with --once, or until interrupted.")
    deliver.add_argument("--once", action="store_true", help="one delivery pass, then exit")
    deliver.add_argument("--worker", help="this worker's name (default host:random)")
    deliver.set_defaults(func=cmd_subscriptions)
    monitoring = sub.add_parser("monitoring", help="flag monitoring items past their due date")
    monitoring_actions = monitoring.add_subparsers(dest="action", required=True,
                                                   metavar="ACTION")
    check = monitoring_actions.add_parser(
        "check", help="mark overdue items (and raise their Flags)",
        description="Mark the monitoring items of active care plans that are past their due "
                    "date as overdue, which raises an active Flag; prints the newly overdue.")
    check.add_argument("--now", help="the date (or date-time with offset) to check at; "
                                     "default: now")
    check.set_defaults(func=cmd_monitoring)
