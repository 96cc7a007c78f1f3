"""The internal JSON API: create, read, update and list records of every concept, plus the
prescription operations (dose change, discontinuation) and whole-document import.

Routes are generated from the concept registry, so a new concept needs no new view code.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Blueprint, Response, current_app, g, request, url_for

from ..auth import compartment
from ..auth.api_rules import check_document
from ..auth.principal import current_principal
from ..errors import BadRequest, Conflict, InvalidInput, Issue, NotFound
from ..fhir import jsonio
from ..fhir.bundle import collection
from ..mapping.document import load_document, load_record, load_with
from ..model import concept_by_collection, concept_by_name
from ..clinical.response import trends
from ..model.changes import discontinue, dose_change
from ..model.medication import DiscontinuationSchema, DoseChangeSchema
from ..model.registry import Concept
from ..store.records import StoredRecord
from . import idempotency
from .outcome import safety_warnings
from .body import json_body

bp = Blueprint("records", __name__, url_prefix="/api/v1")

MAX_PAGE = 500


def _bridge():
    return current_app.extensions["fhir_bridge"]


def _concept(collection_name: str) -> Concept:
    concept = concept_by_collection(collection_name)
    if concept is None:
        raise NotFound(f"no collection {collection_name!r}")
    return concept


def _json(status: int, body: Any, headers: dict | None = None) -> Response:
    return Response(jsonio.dumpb(body), status=status, mimetype="application/json",
                    headers=headers or {})


def _etag(version: int) -> str:
    return f'W/"{version}"'


def _record_response(concept: Concept, stored: StoredRecord, status: int = 200,
                     saved: list[StoredRecord] | None = None) -> Response:
    """The record; when the save found medication safety issues about it, they follow the
    record's fields as ``warnings``, an OperationOutcome of warning issues (never part of the
    record: reading the record again does not show them)."""
    headers = {"ETag": _etag(stored.version),
               "Last-Modified": stored.updated_at.strftime("%a, %d %b %Y %H:%M:%S GMT")}
    if status == 201:
        headers["Location"] = url_for("records.read", collection_name=concept.collection,
                                      record_id=stored.id)
    body = concept.dump(stored.data)
    # Only a prescription carries warnings (a DetectedIssue naming prescription "x" is not
    # about a record "x" of another concept).
    found = detected_issues(saved or [], stored.id) if concept.name == "prescription" else []
    if found:
        body["warnings"] = safety_warnings(found, _bridge().mapper)
    return _json(status, body, headers)


def detected_issues(saved: list[StoredRecord], prescription_id: str | None = None
                     ) -> list[dict]:
    """The DetectedIssues a save wrote (or found unchanged), about one prescription or all."""
    return [s.data for s in saved if s.concept == "detected-issue"
            and (prescription_id is None or prescription_id in s.data["prescription_ids"])]


def idempotent(view):
    """POST views: with an Idempotency-Key seen before, replay the first answer at once. A
    request that loses a race to a concurrent one with the same key (its save refused, since
    the other one claimed the key or changed what this one checked) answers as that one did,
    or 422 if it carried another body."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = idempotency.request_key()
        g.idempotency_key = key
        if key is None:
            return view(*args, **kwargs)
        replay = _replay(key)
        if replay is not None:
            return replay
        try:
            return view(*args, **kwargs)
        except (Conflict, InvalidInput):
            replay = _replay(key)
            if replay is None:
                raise
            return replay

    return wrapper


def _replay(key: tuple[str, str]) -> Response | None:
    bridge = _bridge()
    replay = idempotency.lookup(bridge.engine, *key,
                                ttl_hours=bridge.config["idempotency_ttl_hours"])
    if replay is None:
        return None
    headers = {"Idempotent-Replayed": "true"}
    if replay.location:
        headers["Location"] = replay.location
    return Response(replay.body, status=replay.status, mimetype="application/json",
                    headers=headers)


def _save(changes, respond, **save_kwargs) -> Response:
    """Save changes and build the answer; an idempotency key is claimed first thing in the
    saving transaction and its answer stored before it commits."""
    key = g.get("idempotency_key")
    holder: dict[str, Response] = {}
    bridge = _bridge()

    def claim(conn):
        idempotency.claim(conn, *key, ttl_hours=bridge.config["idempotency_ttl_hours"])

    def also(conn, saved):
        response = respond(saved)
        holder["response"] = response
        if key is not None:
            idempotency.remember(conn, key[0], status=response.status_code,
                                 body=response.get_data(as_text=True),
                                 location=response.headers.get("Location"))

    bridge.store.save(changes, also=also, first=claim if key is not None else None,
                      **save_kwargs)
    return holder["response"]


@bp.get("/<collection_name>")
def list_records(collection_name: str):
    concept = _concept(collection_name)
    try:
        limit = int(request.args.get("limit", 100))
    except ValueError:
        raise BadRequest("limit must be a whole number", [Issue("limit", "not a number")])
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit must be 1-{MAX_PAGE}", [Issue("limit", "out of range")])
    unknown = set(request.args) - {"limit", "after", "patient_id"}
    if unknown:
        raise BadRequest("unknown query parameters",
                         [Issue(name, "is not a parameter of this list") for name in unknown])
    patient_id, visible = compartment.list_filter(request.args.get("patient_id"))
    rows = _bridge().store.list(concept, patient_id=patient_id, limit=limit + 1,
                                after=request.args.get("after")) if visible else []
    items = [concept.dump(r.data) for r in rows[:limit]]
    next_url = None
    if len(rows) > limit:
        args = {k: v for k, v in request.args.items() if k != "after"}
        next_url = url_for("records.list_records", collection_name=collection_name,
                           after=rows[limit - 1].id, **args)
    return _json(200, {"items": items, "next": next_url})


@bp.post("/<collection_name>")
@idempotent
def create(collection_name: str):
    concept = _concept(collection_name)
    record = load_record(concept, json_body())
    compartment.check_write(concept, record)
    return _save([(concept, record)],
                 lambda saved: _record_response(concept, saved[0], 201, saved),
                 create_only=[0])


@bp.get("/<collection_name>/<record_id>")
def read(collection_name: str, record_id: str):
    concept = _concept(collection_name)
    stored = _bridge().store.get(concept, record_id)
    compartment.check_read(concept, stored)
    if request.if_none_match.contains_weak(str(stored.version)):
        return Response(status=304, headers={"ETag": _etag(stored.version)})
    return _record_response(concept, stored)


@bp.put("/<collection_name>/<record_id>")
def update(collection_name: str, record_id: str):
    concept = _concept(collection_name)
    record = load_record(concept, json_body())
    if record["id"] != record_id:
        raise InvalidInput("the body's id differs from the URL",
                           [Issue("id", f"must be {record_id!r}")])
    compartment.check_write(concept, record)
    expected = {}
    if_match = request.headers.get("If-Match")
    if if_match:
        try:
            expected[0] = int(if_match.strip().removeprefix("W/").strip('"'))
        except ValueError:
            raise BadRequest("If-Match must be an ETag like W/\"3\"",
                             [Issue("If-Match", "not a version")]) from None
    bridge = _bridge()
    saved = bridge.store.save([(concept, record)], expected_versions=expected)
    return _record_response(concept, saved[0], saved=saved)


@bp.get("/<collection_name>/<record_id>/fhir")
def as_fhir(collection_name: str, record_id: str):
    """The FHIR resources a record maps to, as a collection Bundle (what sync sends)."""
    concept = _concept(collection_name)
    stored = _bridge().store.get(concept, record_id)
    compartment.check_read(concept, stored)
    resources = _bridge().mapper.to_fhir(concept.name, stored.data)
    return Response(jsonio.dumpb(collection(resources)), mimetype="application/fhir+json")


# --- prescription operations -------------------------------------------------------------------

@bp.post("/prescriptions/<record_id>/dose-changes")
@idempotent
def create_dose_change(record_id: str):
    """Change the dose: a new prescription replaces this one, which is stopped."""
    prescriptions = concept_by_name("prescription")
    change = load_with(DoseChangeSchema, json_body())
    bridge = _bridge()
    prior = bridge.store.get(prescriptions, record_id)
    compartment.check_read(prescriptions, prior)
    if bridge.store.exists("prescription", change["id"]):
        raise Conflict(f"prescription {change['id']!r} exists already",
                       [Issue("id", "choose a new id for the new prescription")])
    new, closed = dose_change(prior.data, change)
    new = load_record(prescriptions, prescriptions.dump(new))
    closed = load_record(prescriptions, prescriptions.dump(closed))
    return _save([(prescriptions, closed), (prescriptions, new)],
                 lambda saved: _record_response(prescriptions, saved[1], 201, saved),
                 create_only=[1], expected_versions={0: prior.version})


@bp.post("/prescriptions/<record_id>/discontinuation")
@idempotent
def create_discontinuation(record_id: str):
    prescriptions = concept_by_name("prescription")
    stop = load_with(DiscontinuationSchema, json_body())
    bridge = _bridge()
    current = bridge.store.get(prescriptions, record_id)
    compartment.check_read(prescriptions, current)
    if not bridge.store.exists("practitioner", stop["by_id"]):
        raise InvalidInput("unknown practitioner",
                           [Issue("by_id", f"names practitioner {stop['by_id']!r}, which does "
                                           "not exist")])
    stopped = load_record(prescriptions, prescriptions.dump(discontinue(current.data, stop)))
    return _save([(prescriptions, stopped)],
                 lambda saved: _record_response(prescriptions, saved[0]),
                 expected_versions={0: current.version})


# --- measurement-based care -----------------------------------------------------------------

@bp.get("/patients/<patient_id>/score-trends")
def score_trends(patient_id: str):
    """Baseline, latest and every score per instrument, with response, remission and whether
    the treatment needs review (rules in mappings/treatment-response.yaml)."""
    bridge = _bridge()
    compartment.check_patient(patient_id)
    bridge.store.get(concept_by_name("patient"), patient_id)  # 404 for an unknown patient
    assessments = [r.data for r in bridge.store.list(concept_by_name("assessment"),
                                                     patient_id=patient_id, limit=10_000)]
    prescriptions = [r.data for r in bridge.store.list(concept_by_name("prescription"),
                                                       patient_id=patient_id, limit=10_000)]
    return _json(200, {"patient_id": patient_id,
                       "instruments": [t.as_dict() for t in trends(assessments,
                                                                   prescriptions)]})


# --- documents ---------------------------------------------------------------------------------

@bp.post("/documents")
@idempotent
def import_document():
    """Import a whole internal-record document in one transaction (all or nothing).

    Nothing is replaced silently: a stored record that the import would change is replaced
    only when the document states its current version (``"version": 2`` in the record);
    otherwise (it changed since, e.g. stopped by a dose change) the import answers 409 naming
    every such record, and stores nothing. Records identical to the stored ones are no-ops,
    so posting the same document again answers 200 and changes nothing."""
    document = json_body()
    check_document(current_principal(), document)
    stated: dict[tuple[str, str], int] = {}
    pairs = load_document(document, known=compartment.known(), versions=stated)
    compartment.check_writes(pairs)
    before = _stored_versions(pairs)
    # What was read is pinned: a record created or changed meanwhile is a lost race (409).
    expected = {i: before[(c.name, r["id"])] for i, (c, r) in enumerate(pairs)
                if (c.name, r["id"]) in before}
    created = [i for i, (c, r) in enumerate(pairs) if (c.name, r["id"]) not in before]

    def respond(saved: list[StoredRecord]) -> Response:
        _refuse_silent_replacements(document, pairs, saved, before, stated)
        return _json(200, _document_answer(saved))

    return _save(pairs, respond, expected_versions=expected, create_only=created)


def _stored_versions(pairs: list[tuple[Concept, dict]]) -> dict[tuple[str, str], int]:
    """(concept name, id) -> stored version, for the records of ``pairs`` that exist."""
    store = _bridge().store
    found: dict[tuple[str, str], int] = {}
    for concept, record in pairs:
        try:
            found[(concept.name, record["id"])] = store.get(concept, record["id"]).version
        except NotFound:
            continue
    return found


def _document_path(document: dict, concept: Concept, record_id: str) -> str:
    """Where a record sits in the document: ``prescriptions[0]``."""
    for index, data in enumerate(document.get(concept.collection) or []):
        if isinstance(data, dict) and data.get("id") == record_id:
            return f"{concept.collection}[{index}]"
    return concept.collection


def _refuse_silent_replacements(document: dict, pairs: list[tuple[Concept, dict]],
                                saved: list[StoredRecord], before: dict[tuple[str, str], int],
                                stated: dict[tuple[str, str], int]) -> None:
    """Inside the saving transaction (raising rolls it back): Conflict naming every stored
    record the import changed without stating the version it replaces, or stating another
    one, and every record the document states a version for that does not exist.
    ``saved[i]`` is what became of ``pairs[i]`` (the store answers one record per change, in
    order; records its consequences add come after)."""
    issues, names = [], []
    for index, (concept, record) in enumerate(pairs):
        key = (concept.name, record["id"])
        current, version = before.get(key), stated.get(key)
        where = _document_path(document, concept, record["id"])
        if current is None:
            if version is not None:
                names.append(f"{concept.name} {record['id']!r}")
                issues.append(Issue(f"{where}.version", f"{concept.name} {record['id']!r} does "
                                    f"not exist; the document updates version {version}",
                                    "conflict"))
            continue
        if saved[index].version == current or version == current:
            continue  # unchanged (a no-op), or the document replaces what it says it does
        names.append(f"{concept.name} {record['id']!r}")
        said = (f"the document states version {version}" if version is not None
                else "the document states no version")
        issues.append(Issue(f"{where}.version", f"{concept.name} {record['id']!r} is at "
                            f"version {current}, changed since; {said} (state \"version\": "
                            f"{current} to replace it)", "conflict"))
    if issues:
        raise Conflict("the document would replace records changed since: "
                       + ", ".join(names), issues)


def _document_answer(saved: list[StoredRecord]) -> dict:
    answer: dict[str, Any] = {"saved": _summary(saved)}
    found = detected_issues(saved)
    if found:
        answer["warnings"] = safety_warnings(found, _bridge().mapper)
    return answer


def _summary(saved: list[StoredRecord]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in saved:
        out[s.concept] = out.get(s.concept, 0) + 1
    return out

