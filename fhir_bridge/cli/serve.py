"""Serving: the service itself, and development tokens."""

from __future__ import annotations

import sys
from pathlib import Path

from ..cli_errors import CommandError
from ..demo import load_demo
from .common import settings


DEMO_SCOPE = "system/*.rs"
DEMO_TOKEN_SECONDS = 3600


#: Where `serve --demo` keeps the development secret it made, in the data folder (the SQLite
#: database's folder, else the working directory), so the demo's tokens outlive a restart.
SECRET_FILE = ".fhir-bridge-dev-secret"


def data_folder(config) -> Path:
    from sqlalchemy.engine import make_url

    url = make_url(config["database_url"])
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent
    return Path.cwd()


def demo_secret(config, secret_env: str) -> tuple[str, str]:
    """(the secret, where it came from): the environment's, else the one kept in the data
    folder, else a new one written there (readable by this user only)."""
    import os
    import secrets

    from ..auth.tokens import MIN_SECRET_BYTES

    if os.environ.get(secret_env):
        if len(os.environ[secret_env].encode("utf-8")) < MIN_SECRET_BYTES:
            raise CommandError(f"{secret_env} must hold at least {MIN_SECRET_BYTES} bytes; "
                               "unset it and serve --demo uses one kept in the data folder")
        return os.environ[secret_env], f"the environment ({secret_env})"
    path = data_folder(config) / SECRET_FILE
    try:
        kept = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        kept = ""
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    if len(kept.encode("utf-8")) >= MIN_SECRET_BYTES:
        return kept, str(path)
    secret = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secret + "\n")
    except OSError as exc:
        raise CommandError(f"cannot keep the demo secret in {path}: "
                           f"{exc.strerror or type(exc).__name__}") from None
    return secret, f"{path} (made now)"


def cmd_serve(args) -> int:
    import os

    from ..app import create_app

    served = {k: v for k, v in (("host", args.host), ("port", args.port)) if v}
    if args.demo:
        from ..auth.mint import dev_issuer

        secret_env = dev_issuer(settings().get("auth") or {})["secret_env"]
        secret, source = demo_secret(settings(), secret_env)
        os.environ[secret_env] = secret
    # --host/--port go into the config, so links made outside a request (notifications) name
    # the address served.
    app = create_app({"server": served} if served else None)
    config = app.extensions["fhir_bridge"].config
    host = config["server"]["host"]
    port = int(config["server"]["port"])
    base = f"http://{host}:{port}"
    if args.demo:
        from ..auth.mint import mint_dev_token

        print(load_demo(app).summary(), file=sys.stderr)
        auth = app.extensions["fhir_bridge.auth"].settings
        token = mint_dev_token(auth, [DEMO_SCOPE], ttl_seconds=DEMO_TOKEN_SECONDS,
                               subject="demo")
        print(f"# the development secret, from {source}; a demo token (scope {DEMO_SCOPE}, "
              f"valid {DEMO_TOKEN_SECONDS // 60} minutes); mint more with: fhir-bridge token "
              "issue --scope ...", flush=True)
        print(f"export {secret_env}={secret}", flush=True)
        print(f"export TOKEN={token}", flush=True)
        print(f"export BRIDGE={base}", flush=True)
    for issuer, why in app.extensions["fhir_bridge.auth"].verifier.left_out.items():
        print(f"warning: tokens of issuer {issuer} will be refused: {why}", file=sys.stderr,
              flush=True)
    if (config.get("subscriptions") or {}).get("deliver_in_serve", True):
        from ..subscriptions.worker import start_background

        start_background(app.extensions["fhir_bridge"])  # a daemon thread: ends with the server
    if (config.get("bulk") or {}).get("run_in_serve", True):
        from ..bulk.worker import start_background as start_exports

        start_exports(app.extensions["fhir_bridge"])  # Bulk Data export jobs, likewise
    from ..api.server import BridgeRequestHandler

    print(f"fhir-bridge: serving {base} (FHIR {base}/fhir, console {base}/console); "
          "Ctrl-C stops it", file=sys.stderr, flush=True)
    # HTTP-layer errors (414, 431, a malformed request line) as OperationOutcome, not HTML.
    app.run(host=host, port=port, threaded=True, request_handler=BridgeRequestHandler)
    return 0


def cmd_token(args) -> int:
    from ..auth.mint import mint_dev_token
    from ..auth.scopes import ScopeError

    auth = settings(database=False).get("auth") or {}
    try:
        token = mint_dev_token(auth, args.scope, issuer=args.issuer, ttl_seconds=args.ttl,
                               subject=args.subject, patient=args.patient)
    except (ValueError, ScopeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


def register(sub) -> None:
    serve = sub.add_parser(
        "serve", help="run the service (config/default.yaml + environment)",
        description="Serve the JSON API, /fhir, /console, /metrics and the health checks. "
                    "--demo loads the six synthetic patients and prints a token.")
    serve.add_argument("--host", help="address to listen on (default server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default server.port, 8080)")
    serve.add_argument("--demo", action="store_true", help="load the fixture patients first, "
                                                          "print a development token")
    serve.set_defaults(func=cmd_serve)
    token = sub.add_parser("token", help="mint a development token (HS256, dev issuer)")
    token_actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    issue = token_actions.add_parser(
        "issue", help="print a token with these scopes",
        description="Mint a token of a development issuer (auth.issuers with secret_env): "
                    "for local use and tests only.")
    issue.add_argument("--scope", action="append", required=True,
                       help="a SMART scope, e.g. system/*.rs (repeatable)")
    issue.add_argument("--patient", help="the patient claim: the FHIR Patient id, e.g. pat-p01 (required for patient/ scopes)")
    issue.add_argument("--subject", default="fhir-bridge-dev", help="the sub claim")
    issue.add_argument("--ttl", type=int, help="lifetime in seconds (default "
                                                "auth.token_ttl_seconds)")
    issue.add_argument("--issuer", help="an issuer of auth.issuers with secret_env "
                                        "(default the first)")
    issue.set_defaults(func=cmd_token)
