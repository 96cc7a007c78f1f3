"""Commands on documents and resources: map, validate, package, demo, import."""

from __future__ import annotations

import sys
from typing import Any

from ..cli_errors import CommandError
from ..demo import load_demo
from ..fhir import jsonio
from ..progress import Progress
from .common import OPENED, open_bridge, pretty, print_json, read_json, settings


def map_document(document: Any) -> dict:
    """An internal-record document -> a validated R4 transaction Bundle (offline)."""
    from ..fhir.bundle import transaction
    from ..fhir.validate import validate_resource
    from ..mapping.document import load_document
    from ..mapping.engine import Mapper
    from ..facade.urls import fhir_base

    from ..model.changes import consequences, with_consequences

    config = settings(database=False)
    mapper = Mapper(config["identifier_system_base"], config["local_code_system_base"])
    resources = []
    pairs = with_consequences(load_document(document), consequences, lambda *_: None)
    for concept, record in pairs:
        for resource in mapper.to_fhir(concept.name, record):
            validate_resource(resource)
            resources.append(resource)
    return transaction(resources, base=fhir_base(config))


def cmd_map(args) -> int:
    """One document to standard output, or many (--out DIR): each to DIR/<name>.fhir.json,
    with progress on a terminal. The first invalid document stops the run (exit 1)."""
    from pathlib import Path

    if args.out is None:
        if len(args.file) != 1:
            raise CommandError("several documents need --out DIR (one Bundle file each)")
        bundle = map_document(read_json(args.file[0]))
        sys.stdout.write(jsonio.dumps(bundle) if args.compact else pretty(bundle))
        sys.stdout.write("\n")
        return 0
    out = Path(args.out)
    if not out.is_dir():
        raise CommandError(f"--out {args.out} is not a folder")
    bar = Progress("map", "documents")
    for done, name in enumerate(args.file, start=1):
        bundle = map_document(read_json(name))
        target = out / f"{Path(name).stem}.fhir.json"
        try:
            target.write_text(jsonio.dumps(bundle) if args.compact else pretty(bundle) + "\n",
                              encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {target}: "
                               f"{exc.strerror or type(exc).__name__}") from None
        bar.update(done, f"{len(bundle.get('entry', []))} resources in the last")
    bar.finish(len(args.file))
    print(f"{len(args.file)} bundles written to {out}", file=sys.stderr)
    return 0


def cmd_validate(args) -> int:
    """Every issue with its severity and path (stderr when there is an error); exit 1 on an
    error. Offline: base R4 and the US Core profiles claimed; --server: that server's
    $validate."""
    from ..conformance.validator import validate_document, validate_on_server

    doc = read_json(args.file)
    # a server that cannot be reached or refuses: one line, exit 2 (main)
    issues = validate_on_server(doc, args.server) if args.server else validate_document(doc)
    failed = any(i.is_error for i in issues)
    out = sys.stderr if failed else sys.stdout
    if failed:
        print(f"error: {args.file} is not valid FHIR R4", file=out)
    for issue in issues:
        print(f"  {issue.severity} {issue.path}: {issue.message}", file=out)
    if failed:
        return 1
    warnings = sum(i.severity == "warning" for i in issues)
    print(f"{args.file}: valid" + (f" ({warnings} warnings)" if warnings else ""))
    return 0


def cmd_package(args) -> int:
    """Build the bridge's conformance package (fhir-bridge-<version>.tgz) into --out."""
    from ..conformance.package import build_package

    base = settings(database=False).get("local_code_system_base") or "urn:fhir-bridge:codesystem"
    try:
        path = build_package(args.out, base)
    except OSError as exc:
        raise CommandError(f"cannot write the package into {args.out}: "
                           f"{exc.strerror or type(exc).__name__}") from None
    print(path)
    return 0


def cmd_demo(args) -> int:
    from ..app import create_app

    app = create_app(settings())
    OPENED.append(app.extensions["fhir_bridge"])
    bar = Progress("demo", "documents")
    loaded = load_demo(app, lambda docs, records: bar.update(docs, f"{records} records added"))
    bar.finish(bar.last_done, f"{sum(loaded.added.values())} records added")
    for concept, count in sorted(loaded.added.items()):
        print(f"{concept}: {count}")
    print(loaded.summary(), file=sys.stderr)
    return 0


def cmd_import(args) -> int:
    """Initial load of internal-record documents (importing.py): progress on a terminal, the
    report as JSON; exit 1 when a document failed (the others are stored)."""
    from dataclasses import asdict
    from pathlib import Path

    from ..importing import import_documents, sources
    from ..progress import Progress

    missing = [p for p in args.path if not Path(p).exists()]
    if missing:
        raise CommandError(f"no such file or folder: {', '.join(missing)}")
    bridge = open_bridge()
    bar = Progress("import", "documents")

    def show(report):
        bar.update(report.documents, f"{report.records_added:,} records added, "
                                     f"{len(report.failed)} failed")

    report = import_documents(bridge.store, sources(Path(p) for p in args.path), show)
    bar.finish(report.documents, f"{report.records_added:,} records added, "
                                 f"{len(report.failed)} failed")
    print_json({**asdict(report), "records_added": report.records_added})
    return 1 if report.failed else 0


def register(sub) -> None:
    mapper = sub.add_parser(
        "map", help="internal-record JSON document -> R4 transaction Bundle",
        description="Map internal-record documents (the format of fixtures/internal/) to "
                    "validated FHIR R4 transaction Bundles, offline: nothing is stored.")
    mapper.add_argument("file", nargs="+", help="path, or - for standard input; several "
                                                "with --out")
    mapper.add_argument("--out", metavar="DIR", help="write each Bundle to DIR/<name>.fhir.json "
                                                     "instead of standard output")
    mapper.add_argument("--compact", action="store_true", help="one line of JSON")
    mapper.set_defaults(func=cmd_map)
    validate = sub.add_parser(
        "validate", help="validate a FHIR R4 resource or Bundle (base R4 and the US Core "
                         "profiles it claims)",
        description="Check a resource or Bundle: structure, required bindings, and the US Core "
                    "profiles it claims. Every issue is printed with its severity and path; "
                    "exit 1 when there is an error.")
    validate.add_argument("file", help="path, or - for standard input")
    validate.add_argument("--server", metavar="URL", help="use this FHIR server's $validate "
                                                          "instead of the offline checks")
    validate.set_defaults(func=cmd_validate)
    package = sub.add_parser("package", help="build the bridge's conformance package (.tgz)")
    actions = package.add_subparsers(dest="action", required=True, metavar="ACTION")
    build = actions.add_parser(
        "build", help="write fhir-bridge-<version>.tgz",
        description="Build the FHIR package with the bridge's StructureDefinitions, "
                    "CodeSystems, ValueSets and CapabilityStatement (docs/conformance.md).")
    build.add_argument("--out", default=".", help="folder for fhir-bridge-<version>.tgz "
                                                  "(default: the current one)")
    build.set_defaults(func=cmd_package)
    demo = sub.add_parser(
        "demo", help="load the fixture patients into the configured database",
        description="Add the six synthetic demo patients (fixtures/internal/) to the database; "
                    "records already stored are left as they are.")
    demo.set_defaults(func=cmd_demo)
    importer = sub.add_parser(
        "import", help="load folders of internal-record documents (.json, .ndjson) into the "
                       "store, adding only what it does not hold",
        description="Initial load: each document is saved in one transaction; records already "
                    "stored are skipped, so a second run after a crash doubles nothing. "
                    "Progress on a terminal; the report as JSON; exit 1 when a document "
                    "failed.")
    importer.add_argument("path", nargs="+", help="a document, an NDJSON file (one document "
                                                  "per line) or a folder of them")
    importer.set_defaults(func=cmd_import)
