"""The `fhir-bridge` command: serve, map, validate, package, demo, import, sync, target,
token, worker, subscriptions, monitoring (``fhir-bridge COMMAND --help`` for each).

Errors: a document or resource with invalid fields is reported field by field (exit 1); every
other failure (a file that cannot be read, bad configuration, a database that cannot be
opened, a bad argument, a bug) is one line on stderr and exit 2, never a traceback, and never
the data the command was working on (``main`` is the one place that does this).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..cli_errors import error_line
from ..demo import load_demo
from ..errors import FhirValidationError, InvalidInput
from . import background, documents, serve, sync
from .common import OPENED, print_issues
from .documents import map_document

__all__ = ["build_parser", "load_demo", "main", "map_document"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fhir-bridge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, documents, sync, background):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (InvalidInput, FhirValidationError) as exc:
        # the input's records are not valid: each bad field on its own line, exit 1
        print_issues(exc.message, exc.issues)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place errors become one line
        print(error_line(exc), file=sys.stderr)
        return 2
    finally:
        while OPENED:
            OPENED.pop().engine.dispose()
