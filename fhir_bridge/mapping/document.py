"""Internal-record documents: one JSON object holding records by collection name, e.g.
``{"patients": [...], "prescriptions": [...]}`` (the format of ``fixtures/internal/``).

Loading validates every record with its schema and checks that every reference names a record
of the document (or of ``known``, e.g. the store). Errors name each bad field by its path in the
document, such as ``prescriptions[0].dose.value``.

A record may state ``version``: the stored version of the record it updates (the ``ETag`` the
API gave for it, without ``W/"..."``). It is not part of the record; ``load_document`` hands it
back in ``versions`` and the document import (``POST /api/v1/documents``) refuses to replace a
stored record that changed unless the document states the version it replaces.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from marshmallow import ValidationError

from ..errors import Issue, InvalidInput
from ..model import CONCEPTS, concept_by_collection
from ..model.registry import Concept


def flatten_messages(messages: Any, prefix: str) -> list[Issue]:
    """marshmallow's nested error dict -> one Issue per bad field, paths like a.b[0].c."""
    issues: list[Issue] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == "_schema":
                sub = prefix
            elif isinstance(key, int):
                sub = f"{prefix}[{key}]"
            elif isinstance(key, str) and key.startswith("["):
                sub = f"{prefix}{key}"
            else:
                sub = f"{prefix}.{key}" if prefix else str(key)
            issues.extend(flatten_messages(value, sub))
    elif isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            issues.extend(Issue(prefix or "(root)", m) for m in messages)
        else:
            for item in messages:
                issues.extend(flatten_messages(item, prefix))
    else:
        issues.append(Issue(prefix or "(root)", str(messages)))
    return issues


def load_record(concept: Concept, data: Any, prefix: str = "",
                partial: bool = False) -> dict[str, Any]:
    return load_with(concept.schema, data, prefix, partial, what=concept.name)


def load_with(schema: type, data: Any, prefix: str = "", partial: bool = False,
              what: str | None = None) -> dict[str, Any]:
    """Load data with a schema; a ValidationError becomes InvalidInput naming each field."""
    try:
        return schema().load(data, partial=partial)
    except ValidationError as exc:
        name = what or schema.__name__.removesuffix("Schema").lower()
        raise InvalidInput(f"invalid {name}", flatten_messages(exc.messages, prefix)) from None


ORDER = [c.collection for c in CONCEPTS]  # dependency order: people first, plans last


def _stated_version(data: Any, where: str, issues: list[Issue]) -> tuple[Any, int | None]:
    """The record without its ``version``, and that version (None when not stated)."""
    if not isinstance(data, dict) or "version" not in data:
        return data, None
    data = dict(data)
    version = data.pop("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**31:
        issues.append(Issue(f"{where}.version", "must be a whole number of at least 1: the "
                                                "stored version this record updates"))
        return data, None
    return data, version


def load_document(document: Any,
                  known: Callable[[str, str], bool] | None = None,
                  versions: dict[tuple[str, str], int] | None = None
                  ) -> list[tuple[Concept, dict]]:
    """Validate a whole document; return (concept, record) pairs in dependency order. The
    versions records state are put in ``versions`` ((concept name, id) -> version) when
    given, and dropped otherwise."""
    if not isinstance(document, dict):
        raise InvalidInput("a document is a JSON object of record lists",
                           [Issue("(root)", "must be a JSON object")])
    issues: list[Issue] = []
    loaded: list[tuple[Concept, dict, str]] = []
    for collection, records in document.items():
        concept = concept_by_collection(collection)
        if concept is None:
            issues.append(Issue(collection, f"unknown collection; known: {', '.join(ORDER)}"))
            continue
        if not isinstance(records, list):
            issues.append(Issue(collection, "must be a list of records"))
            continue
        for index, data in enumerate(records):
            where = f"{collection}[{index}]"
            data, version = _stated_version(data, where, issues)
            try:
                record = load_record(concept, data, where)
            except InvalidInput as exc:
                issues.extend(exc.issues)
                continue
            loaded.append((concept, record, where))
            if version is not None and versions is not None:
                versions[(concept.name, record["id"])] = version
    ids: dict[str, set[str]] = {}
    for concept, record, where in loaded:
        seen = ids.setdefault(concept.name, set())
        if record["id"] in seen:
            issues.append(Issue(f"{where}.id", f"repeats {concept.name} id {record['id']}"))
        seen.add(record["id"])
    for concept, record, where in loaded:
        for path, target, target_id in concept.references(record):
            if target_id in ids.get(target, ()) or (known and known(target, target_id)):
                continue
            issues.append(Issue(f"{where}.{path}", f"names {target} {target_id!r}, which does "
                                                   "not exist"))
    if issues:
        raise InvalidInput("the document has invalid records", issues)
    loaded.sort(key=lambda item: ORDER.index(item[0].collection))
    return [(concept, record) for concept, record, _ in loaded]


def group(pairs: Iterable[tuple[Concept, dict]]) -> dict[str, list[dict]]:
    """(concept, record) pairs back into a document, collections in dependency order."""
    out: dict[str, list[dict]] = {}
    for concept, record in pairs:
        out.setdefault(concept.collection, []).append(concept.dump(record))
    return {k: out[k] for k in ORDER if k in out}
