"""Commands on sync: push, pull, status, retry, conflicts, rejects; target check and clean."""

from __future__ import annotations

import sys

from ..cli_errors import CommandError
from ..progress import Progress
from .common import open_bridge, print_json, settings


def cmd_sync(args) -> int:
    from dataclasses import asdict

    from ..store import outbox
    from ..sync import operator as sync_operator
    from ..sync import service
    from ..sync.conflicts import list_conflicts

    bridge = open_bridge()
    if args.action == "push":
        pusher = service.pusher_for(bridge, args.target, args.worker)
        bar = Progress("push", "rows")

        def pushed(so_far):
            bar.update(so_far.sent + so_far.unchanged,
                       f"{so_far.retried} retried, {so_far.dead} dead")

        report = pusher.push_all(max_batches=1 if args.once else None, progress=pushed)
        bar.finish(report.sent + report.unchanged, f"{report.retried} retried, "
                                                   f"{report.dead} dead")
        print_json(asdict(report))
        return 0 if report.dead == 0 else 1
    if args.action == "pull":
        bar = Progress("pull", "resources")

        def pulled(so_far):
            bar.update(so_far.seen, f"{so_far.applied + so_far.imported} taken in, "
                                    f"{so_far.rejected} rejected")

        report = service.puller_for(bridge, args.target).pull(args.patient or None, pulled)
        bar.finish(report.seen, f"{report.applied + report.imported} taken in, "
                                f"{report.rejected} rejected")
        print_json(asdict(report))
        return 0
    if args.action == "status":
        status = service.sync_status(bridge)
        status["dead"] = outbox.listing(bridge.engine, "dead")
        print_json(status)
        return 0
    if args.action == "retry":
        print(f"requeued {sync_operator.retry_dead(bridge, args.seq or None, 'cli')} dead rows")
        return 0
    if args.action == "rejects":
        if args.retry:
            print_json(asdict(sync_operator.retry_rejects(bridge, "cli", args.target,
                                                           args.reason)))
            return 0
        from ..sync.rejects import grouped

        print_json([{**asdict(g), "last_seen_at": g.last_seen_at.isoformat()}
                     for g in grouped(bridge.engine, args.target, args.reason)])
        return 0
    if args.action == "conflicts":
        if args.resolve is not None:
            if args.keep is None:
                raise CommandError("--resolve needs --keep local|remote")
            print(sync_operator.resolve_conflict(bridge, args.resolve, args.keep, "cli",
                                                 args.target))
            return 0
        print_json(list_conflicts(bridge.engine, None if args.all else "open"))
        return 0
    raise CommandError(f"unknown sync action {args.action}")


def cmd_target(args) -> int:
    from dataclasses import asdict

    from ..sync import first_writes, service
    from ..sync.targets import target_from_config

    target = target_from_config(settings(), args.name)
    if args.action == "check":
        report = service.check_target(target)
        if report.ok:  # how pushes write what the target lacks (sync/first_writes.py)
            first_writes.record(open_bridge().engine, target.name, report.first_write)
        print_json(asdict(report))
        if report.left_behind:
            print(f"error: target check could not delete its test resource "
                  f"{', '.join(report.left_behind)} on {target.name} ({report.cleanup_error});"
                  f" it carries the bridge's tag: `fhir-bridge target clean {target.name}` "
                  f"removes it", file=sys.stderr)
        return 0 if report.ok else 1
    deleted = service.clean_target(open_bridge(), target)
    print_json({"deleted": deleted})
    return 0


def register(sub) -> None:
    sync = sub.add_parser("sync", help="push the outbox to a FHIR server, pull changes back",
                          description="Sync with the FHIR servers of config sync.targets "
                                      "(docs/sync.md).")
    sync.set_defaults(func=cmd_sync, target=None, worker=None, once=False, patient=None,
                      seq=None, resolve=None, keep=None, all=False, reason=None, retry=False)
    actions = sync.add_subparsers(dest="action", required=True, metavar="ACTION")

    def target_option(parser):
        parser.add_argument("--target", help="a profile of config sync.targets (default "
                                             "sync.target)")

    push = actions.add_parser("push", help="send the outbox to the target",
                              description="Send what the outbox holds as transaction bundles "
                                          "(no duplicates: conditional by identifier); the "
                                          "report as JSON, exit 1 when rows were dead-lettered.")
    target_option(push)
    push.add_argument("--worker", help="this worker's name (default host:random)")
    push.add_argument("--once", action="store_true", help="one batch only")
    pull = actions.add_parser("pull", help="take the target's changes into the bridge",
                              description="Read what changed on the target since the last "
                                          "pull (per patient and type) into the internal "
                                          "records; the report as JSON.")
    target_option(pull)
    pull.add_argument("--patient", action="append",
                      help="a patient's id on the server (repeatable; default: the managed "
                           "patients)")
    actions.add_parser("status", help="outbox by state, dead letters, conflicts, rejects",
                       description="The outbox by state, the dead letters with their "
                                   "reasons, open conflicts and pull rejects, as JSON.")
    retry = actions.add_parser("retry", help="put dead letters back in the queue",
                               description="Put dead-lettered outbox rows back in the queue "
                                           "(audited).")
    retry.add_argument("--seq", type=int, action="append", help="only these outbox rows "
                                                                 "(repeatable)")
    conflicts = actions.add_parser("conflicts", help="list or resolve sync conflicts",
                                   description="Changes made on both sides: list them, or "
                                               "resolve one with --resolve ID --keep "
                                               "local|remote (audited).")
    target_option(conflicts)
    conflicts.add_argument("--resolve", type=int, metavar="ID", help="resolve this one")
    conflicts.add_argument("--keep", choices=["local", "remote"], help="which side wins")
    conflicts.add_argument("--all", action="store_true", help="resolved ones too")
    rejects = actions.add_parser("rejects", help="list pull rejects by reason, or retry them",
                                 description="Pulled resources that could not be mapped, one "
                                             "per resource and reason, grouped by reason; "
                                             "--retry reads them from the server again and "
                                             "pulls them (after a mapping change).")
    target_option(rejects)
    rejects.add_argument("--reason", help="only those whose reason contains this text")
    rejects.add_argument("--retry", action="store_true",
                         help="read them from the server again and pull them")
    target = sub.add_parser("target", help="check a sync target, or remove the bridge's data",
                            description="Check a target (capabilities and a create, read, "
                                        "delete round trip), or delete every resource the "
                                        "bridge wrote there.")
    target.set_defaults(func=cmd_target)
    target_actions = target.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (("check", "capabilities and a test round trip"),
                         ("clean", "delete the resources carrying the bridge's tag")):
        parser = target_actions.add_parser(action, help=text, description=text)
        parser.add_argument("name", help="a profile of config sync.targets")
