"""Initial load: internal-record documents into the store, adding only what it does not hold.

``fhir-bridge import`` reads folders of documents (``*.json``, one document each, the format of
``fixtures/internal/``) and NDJSON files (``*.ndjson``, one document per line), one document at
a time, so memory holds one document, never the whole load. Each document is saved in one
transaction with the records it adds; a record already stored is left as it is (never
overwritten), so running the same import again after a crash adds exactly what the first run
did not. The outbox gets every added record, and ``sync push`` sends them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import sqlalchemy as sa

from .errors import BridgeError, InvalidInput
from .fhir import jsonio
from .store import tables

#: Largest document (a .json file or one NDJSON line) read, in bytes.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024


@dataclass
class Source:
    where: str  # file, or file:line
    text: bytes


@dataclass
class ImportReport:
    documents: int = 0
    added: dict[str, int] = field(default_factory=dict)
    already_stored: int = 0  # records named again (counted once per document naming them)
    failed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def records_added(self) -> int:
        return sum(self.added.values())


def sources(paths: Iterable[Path]) -> Iterator[Source]:
    """Every document under ``paths`` (files, or folders searched recursively) in name order."""
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson")) \
            if path.is_dir() else [path]
        for file in files:
            if file.suffix == ".ndjson":
                with file.open("rb") as lines:
                    for number, line in enumerate(lines, start=1):
                        if line.strip():
                            yield Source(f"{file}:{number}", line)
            else:
                yield Source(str(file), file.read_bytes())


def already_stored(engine, pairs: list) -> set[tuple[str, str]]:
    """The (concept name, id) of ``pairs`` the store holds: one query per 500 ids of a
    concept, not one per record (``concept = ? AND id IN (...)``, which both databases answer
    from the primary key)."""
    by_concept: dict[str, list[str]] = {}
    for concept, record in pairs:
        by_concept.setdefault(concept.name, []).append(record["id"])
    records = tables.records
    found: set[tuple[str, str]] = set()
    with engine.connect() as conn:
        for name, ids in by_concept.items():
            for start in range(0, len(ids), 500):
                found.update((row.concept, row.id) for row in conn.execute(
                    sa.select(records.c.concept, records.c.id).where(
                        records.c.concept == name, records.c.id.in_(ids[start:start + 500]))))
    return found


def add_missing(store, document: Any) -> tuple[list, list]:
    """Save the records of ``document`` the store does not hold (one transaction); returns
    (the (concept, record) pairs added, every pair the document names)."""
    from .mapping.document import load_document

    pairs = load_document(document, known=store.exists)
    stored = already_stored(store.engine, pairs)
    new = [(c, r) for c, r in pairs if (c.name, r["id"]) not in stored]
    if new:
        # create_only: a record that appeared meanwhile is refused (409), not overwritten
        store.save(new, create_only=range(len(new)))
    return new, pairs


def import_documents(store, documents: Iterable[Source],
                     progress: Callable[[ImportReport], None] | None = None) -> ImportReport:
    """Import each document; one that cannot be read or saved is reported with its issues
    (field paths, not values) and the import goes on."""
    report = ImportReport()
    for source in documents:
        report.documents += 1
        try:
            if len(source.text) > MAX_DOCUMENT_BYTES:
                raise InvalidInput(f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")
            new, pairs = add_missing(store, jsonio.strict_loads(source.text))
        except BridgeError as exc:
            report.failed.append({"document": source.where, "error": exc.message,
                                  "issues": [f"{i.path}: {i.message}" for i in
                                             getattr(exc, "issues", [])][:20]})
        else:
            for concept, _ in new:
                report.added[concept.name] = report.added.get(concept.name, 0) + 1
            report.already_stored += len(pairs) - len(new)
        if progress is not None:
            progress(report)
    return report
