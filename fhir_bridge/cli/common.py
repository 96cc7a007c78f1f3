"""What the commands share: reading JSON input, the configuration, opening a bridge (closed by
``main``), printing JSON, the issues of invalid input, the date to check at."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..cli_errors import CommandError
from ..errors import BridgeError, Issue
from ..fhir import jsonio


#: Bridges a command opened; main() closes their database pools when the command ends.
OPENED: list = []


def read_json(path: str) -> Any:
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


def settings(database: bool = True) -> dict[str, Any]:
    """The configuration; a config file that cannot be read or parsed (or, when the command
    needs the ``database``, a database_url that is no URL) is a CommandError."""
    import yaml

    from ..config import load_config

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


def print_issues(message: str, issues: list[Issue]) -> None:
    print(f"error: {message}", file=sys.stderr)
    for issue in issues:
        print(f"  {issue.path}: {issue.message}", file=sys.stderr)


def open_bridge():
    from ..app import build_bridge

    bridge = build_bridge(settings())
    OPENED.append(bridge)
    return bridge


def print_json(doc: Any) -> None:
    sys.stdout.write(pretty(doc) + "\n")


def pretty(doc: Any) -> str:
    import json

    return json.dumps(doc, indent=2, ensure_ascii=False)


def today(value: str | None, timezone: str) -> "Any":
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
