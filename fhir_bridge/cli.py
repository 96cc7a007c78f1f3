"""The `fhir-bridge` command: serve, map, validate, demo, sync, target, token, subscriptions,
monitoring.

Errors: a document or resource with invalid fields is reported field by field (exit 1); every
other failure (a file that cannot be read, bad configuration, a database that cannot be
opened, a bad argument, a bug) is one line on stderr and exit 2, never a traceback, and never
the data the command was working on (``main`` is the one place that does this).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from .cli_errors import CommandError, error_line
from .demo import load_demo
from .errors import BridgeError, FhirValidationError, InvalidInput, Issue
from .fhir import jsonio


def _read_json(path: str) -> Any:
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        return jsonio.strict_loads(data)
    except BridgeError as exc:
        reasons = "; ".join(i.message if i.path in ("", "(body)", "(root)")
                            else f"{i.path}: {i.message}" for i in exc.issues) or exc.message
        raise CommandError(f"{path} is not valid JSON: {reasons}") from None


def _config(database: bool = True) -> dict[str, Any]:
    """The configuration; a config file that cannot be read or parsed (or, when the command
    needs the ``database``, a database_url that is no URL) is a CommandError."""
    import yaml

    from .config import load_config

    try:
        config = load_config()
    except OSError as exc:
        raise CommandError(f"cannot read the config file {exc.filename}: "
                           f"{exc.strerror or type(exc).__name__}") from None
    except yaml.YAMLError as exc:
        raise CommandError(f"a config file is not valid YAML ({type(exc).__name__})") from None
    except ValueError as exc:  # load_config's own message: which file, what is wrong
        raise CommandError(str(exc)) from None
    url = config.get("database_url")
    if database and (not isinstance(url, str) or "://" not in url):
        raise CommandError("database_url must be a database URL, e.g. sqlite:///bridge.db or "
                           "postgresql+psycopg://user:password@host:5432/name")
    return config


def _print_issues(message: str, issues: list[Issue]) -> None:
    print(f"error: {message}", file=sys.stderr)
    for issue in issues:
        print(f"  {issue.path}: {issue.message}", file=sys.stderr)


def map_document(document: Any) -> dict:
    """An internal-record document -> a validated R4 transaction Bundle (offline)."""
    from .fhir.bundle import transaction
    from .fhir.validate import validate_resource
    from .mapping.document import load_document
    from .mapping.engine import Mapper
    from .facade.urls import fhir_base

    from .model.changes import consequences, with_consequences

    config = _config(database=False)
    mapper = Mapper(config["identifier_system_base"], config["local_code_system_base"])
    resources = []
    pairs = with_consequences(load_document(document), consequences, lambda *_: None)
    for concept, record in pairs:
        for resource in mapper.to_fhir(concept.name, record):
            validate_resource(resource)
            resources.append(resource)
    return transaction(resources, base=fhir_base(config))


def validate_document(doc: Any) -> list[Issue]:
    """Issues of a FHIR resource, or of a Bundle and every resource in it."""
    from .fhir.validate import resource_issues

    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        shell = {k: v for k, v in doc.items() if k != "entry"}
        issues = resource_issues(shell)
        for index, entry in enumerate(doc.get("entry") or []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if resource is None:
                if not (isinstance(entry, dict) and entry.get("request", {}).get("method")
                        == "DELETE"):
                    issues.append(Issue(f"Bundle.entry[{index}]", "has no resource"))
                continue
            issues.extend(Issue(f"Bundle.entry[{index}].resource.{i.path}", i.message, i.code)
                          for i in resource_issues(resource))
        return issues
    return resource_issues(doc)


DEMO_SCOPE = "system/*.rs"
DEMO_TOKEN_SECONDS = 3600


def cmd_serve(args) -> int:
    import os
    import secrets

    from .app import create_app

    if args.demo:
        # Demo only: a random development secret for this process when none is set.
        from .auth.mint import dev_issuer
        from .auth.tokens import MIN_SECRET_BYTES

        secret_env = dev_issuer(_config().get("auth") or {})["secret_env"]
        if not os.environ.get(secret_env):
            os.environ[secret_env] = secrets.token_urlsafe(32)
        elif len(os.environ[secret_env].encode("utf-8")) < MIN_SECRET_BYTES:
            raise CommandError(f"{secret_env} must hold at least {MIN_SECRET_BYTES} bytes; "
                               "unset it and serve --demo makes a random one")
    served = {k: v for k, v in (("host", args.host), ("port", args.port)) if v}
    # --host/--port go into the config, so links made outside a request (notifications) name
    # the address served.
    app = create_app({"server": served} if served else None)
    if args.demo:
        from .auth.mint import mint_dev_token

        print(load_demo(app).summary(), file=sys.stderr)
        auth = app.extensions["fhir_bridge.auth"].settings
        token = mint_dev_token(auth, [DEMO_SCOPE], ttl_seconds=DEMO_TOKEN_SECONDS,
                               subject="demo")
        print(f"# a demo token (scope {DEMO_SCOPE}, valid {DEMO_TOKEN_SECONDS // 60} minutes); "
              "mint more with: fhir-bridge token issue --scope ...", flush=True)
        print(f"export {secret_env}={os.environ[secret_env]}", flush=True)
        print(f"export TOKEN={token}", flush=True)
    config = app.extensions["fhir_bridge"].config
    host = config["server"]["host"]
    port = int(config["server"]["port"])
    if (config.get("subscriptions") or {}).get("deliver_in_serve", True):
        from .subscriptions.worker import start_background

        start_background(app.extensions["fhir_bridge"])  # a daemon thread: ends with the server
    from .api.server import BridgeRequestHandler

    # HTTP-layer errors (414, 431, a malformed request line) as OperationOutcome, not HTML.
    app.run(host=host, port=port, threaded=True, request_handler=BridgeRequestHandler)
    return 0


def cmd_subscriptions(args) -> int:
    """Deliver subscription notifications: one pass (--once) or until interrupted."""
    import threading
    from dataclasses import asdict

    from .subscriptions.worker import Deliverer

    bridge = _bridge()
    deliverer = Deliverer(bridge.engine, bridge.config, worker=args.worker)
    if args.once:
        _print_json(asdict(deliverer.run_once()))
        return 0
    stop = threading.Event()
    try:
        deliverer.run_forever(stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


def cmd_map(args) -> int:
    bundle = map_document(_read_json(args.file))
    sys.stdout.write(jsonio.dumps(bundle) if args.compact else _pretty(bundle))
    sys.stdout.write("\n")
    return 0


def cmd_validate(args) -> int:
    issues = validate_document(_read_json(args.file))
    if issues:
        _print_issues(f"{args.file} is not valid FHIR R4", issues)
        return 1
    print(f"{args.file}: valid")
    return 0


def cmd_demo(args) -> int:
    from .app import create_app

    app = create_app(_config())
    _OPENED.append(app.extensions["fhir_bridge"])
    loaded = load_demo(app)
    for concept, count in sorted(loaded.added.items()):
        print(f"{concept}: {count}")
    print(loaded.summary(), file=sys.stderr)
    return 0


#: Bridges a command opened; main() closes their database pools when the command ends.
_OPENED: list = []


def _bridge():
    from .app import build_bridge

    bridge = build_bridge(_config())
    _OPENED.append(bridge)
    return bridge


def _print_json(doc: Any) -> None:
    sys.stdout.write(_pretty(doc) + "\n")


def cmd_sync(args) -> int:
    from dataclasses import asdict

    from .store import outbox
    from .sync import service
    from .sync.conflicts import list_conflicts

    bridge = _bridge()
    if args.action == "push":
        pusher = service.pusher_for(bridge, args.target, args.worker)
        report = pusher.push_all(max_batches=1 if args.once else None)
        _print_json(asdict(report))
        return 0 if report.dead == 0 else 1
    if args.action == "pull":
        report = service.puller_for(bridge, args.target).pull(args.patient or None)
        _print_json(asdict(report))
        return 0
    if args.action == "status":
        status = service.sync_status(bridge)
        status["dead"] = outbox.listing(bridge.engine, "dead")
        _print_json(status)
        return 0
    if args.action == "retry":
        print(f"requeued {outbox.retry(bridge.engine, args.seq or None)} dead rows")
        return 0
    if args.action == "conflicts":
        if args.resolve is not None:
            if args.keep is None:
                raise CommandError("--resolve needs --keep local|remote")
            print(service.resolve_conflict(bridge, args.resolve, args.keep, args.target))
            return 0
        _print_json(list_conflicts(bridge.engine, None if args.all else "open"))
        return 0
    raise CommandError(f"unknown sync action {args.action}")


def cmd_target(args) -> int:
    from dataclasses import asdict

    from .sync import service
    from .sync.targets import target_from_config

    target = target_from_config(_config(), args.name)
    if args.action == "check":
        report = service.check_target(target)
        _print_json(asdict(report))
        if report.left_behind:
            print(f"error: target check could not delete its test resource "
                  f"{', '.join(report.left_behind)} on {target.name} ({report.cleanup_error});"
                  f" it carries the bridge's tag: `fhir-bridge target clean {target.name}` "
                  f"removes it", file=sys.stderr)
        return 0 if report.ok else 1
    deleted = service.clean_target(_bridge(), target)
    _print_json({"deleted": deleted})
    return 0


def cmd_token(args) -> int:
    from .auth.mint import mint_dev_token
    from .auth.scopes import ScopeError

    auth = _config(database=False).get("auth") or {}
    try:
        token = mint_dev_token(auth, args.scope, issuer=args.issuer, ttl_seconds=args.ttl,
                               subject=args.subject, patient=args.patient)
    except (ValueError, ScopeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


def _today(value: str | None, timezone: str) -> "Any":
    """The day it is: --now (a date, or a date-time with offset, taken in its own offset),
    else now in the configured timezone."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    if value is None:
        return dt.datetime.now(ZoneInfo(timezone)).date()
    try:
        if "T" in value:
            moment = dt.datetime.fromisoformat(value)
        else:
            return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError("--now must be a date (2025-05-01) or a date-time with offset "
                           "(2025-05-01T08:00:00-04:00)") from None
    if moment.tzinfo is None:
        raise CommandError("--now needs a timezone offset, e.g. 2025-05-01T08:00:00-04:00")
    return moment.date()


def cmd_monitoring(args) -> int:
    bridge = _bridge()
    today = _today(args.now, bridge.config.get("default_timezone") or "UTC")
    from .clinical.overdue import check_overdue

    found = check_overdue(bridge.store, today)
    _print_json({"today": today.isoformat(), "newly_overdue": found})
    return 0


def _pretty(doc: Any) -> str:
    import json

    return json.dumps(doc, indent=2, ensure_ascii=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fhir-bridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the service (config/default.yaml + environment)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--demo", action="store_true", help="load the fixture patients first")
    serve.set_defaults(func=cmd_serve)
    mapper = sub.add_parser("map", help="internal-record JSON document -> R4 transaction Bundle")
    mapper.add_argument("file", help="path, or - for standard input")
    mapper.add_argument("--compact", action="store_true", help="one line of JSON")
    mapper.set_defaults(func=cmd_map)
    validate = sub.add_parser("validate", help="validate a FHIR R4 resource or Bundle")
    validate.add_argument("file", help="path, or - for standard input")
    validate.set_defaults(func=cmd_validate)
    demo = sub.add_parser("demo", help="load the fixture patients into the configured database")
    demo.set_defaults(func=cmd_demo)
    sync = sub.add_parser("sync", help="push the outbox to a FHIR server, pull changes back")
    sync.add_argument("action", choices=["push", "pull", "status", "retry", "conflicts"])
    sync.add_argument("--target", help="a profile of config sync.targets (default sync.target)")
    sync.add_argument("--worker", help="push: this worker's name (default host:random)")
    sync.add_argument("--once", action="store_true", help="push: one batch only")
    sync.add_argument("--patient", action="append",
                      help="pull: a patient's id on the server (repeatable; default: managed)")
    sync.add_argument("--seq", type=int, action="append", help="retry: only these outbox rows")
    sync.add_argument("--resolve", type=int, metavar="ID", help="conflicts: resolve this one")
    sync.add_argument("--keep", choices=["local", "remote"], help="conflicts: which side wins")
    sync.add_argument("--all", action="store_true", help="conflicts: resolved ones too")
    sync.set_defaults(func=cmd_sync)
    target = sub.add_parser("target", help="check a sync target, or remove the bridge's data")
    target.add_argument("action", choices=["check", "clean"])
    target.add_argument("name", help="a profile of config sync.targets")
    target.set_defaults(func=cmd_target)
    token = sub.add_parser("token", help="mint a development token (HS256, dev issuer)")
    token.add_argument("action", choices=["issue"])
    token.add_argument("--scope", action="append", required=True,
                       help="a SMART scope, e.g. system/*.rs (repeatable)")
    token.add_argument("--patient", help="the patient claim (required for patient/ scopes)")
    token.add_argument("--subject", default="fhir-bridge-dev", help="the sub claim")
    token.add_argument("--ttl", type=int, help="lifetime in seconds (default "
                                                "auth.token_ttl_seconds)")
    token.add_argument("--issuer", help="an issuer of auth.issuers with secret_env "
                                        "(default the first)")
    token.set_defaults(func=cmd_token)
    subs = sub.add_parser("subscriptions", help="deliver subscription notifications")
    subs.add_argument("action", choices=["deliver"])
    subs.add_argument("--once", action="store_true", help="one delivery pass, then exit")
    subs.add_argument("--worker", help="this worker's name (default host:random)")
    subs.set_defaults(func=cmd_subscriptions)
    monitoring = sub.add_parser("monitoring", help="flag monitoring items past their due date")
    monitoring.add_argument("action", choices=["check"])
    monitoring.add_argument("--now", help="the date (or date-time with offset) to check at; "
                                          "default: now")
    monitoring.set_defaults(func=cmd_monitoring)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (InvalidInput, FhirValidationError) as exc:
        # the input's records are not valid: each bad field on its own line, exit 1
        _print_issues(exc.message, exc.issues)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place errors become one line
        print(error_line(exc), file=sys.stderr)
        return 2
    finally:
        while _OPENED:
            _OPENED.pop().engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
