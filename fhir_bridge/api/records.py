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
    found = _detected_issues(saved or [], stored.id)
    if found:
        body["warnings"] = safety_warnings(found, _bridge().mapper)
    return _json(status, body, headers)


def _detected_issues(saved: list[StoredRecord], prescription_id: str | None = None
                     ) -> list[dict]:
    """The DetectedIssues a save wrote (or found unchanged), about one prescription or all."""
    return [s.data for s in saved if s.concept == "detected-issue"
            and (prescription_id is None or prescription_id in s.data["prescription_ids"])]


def idempotent(view):
    """POST views: with an Idempotency-Key seen before, replay the first answer at once."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = idempotency.request_key()
        g.idempotency_key = key
        if key is not None:
            bridge = _bridge()
            replay = idempotency.lookup(bridge.engine, *key,
                                        ttl_hours=bridge.config["idempotency_ttl_hours"])
            if replay is not None:
                headers = {"Idempotent-Replayed": "true"}
                if replay.location:
                    headers["Location"] = replay.location
                return Response(replay.body, status=replay.status, mimetype="application/json",
                                headers=headers)
        return view(*args, **kwargs)

    return wrapper


def _save(changes, respond, **save_kwargs) -> Response:
    """Save changes and build the answer; an idempotency key is stored in the same
    transaction."""
    key = g.get("idempotency_key")
    holder: dict[str, Response] = {}

    def also(conn, saved):
        response = respond(saved)
        holder["response"] = response
        if key is not None:
            idempotency.remember(conn, *key, status=response.status_code,
                                 body=response.get_data(as_text=True),
                                 location=response.headers.get("Location"))

    _bridge().store.save(changes, also=also, **save_kwargs)
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
    """Import a whole internal-record document in one transaction (all or nothing)."""
    document = json_body()
    check_document(current_principal(), document)
    pairs = load_document(document, known=compartment.known())
    compartment.check_writes(pairs)
    return _save(pairs, lambda saved: _json(200, _document_answer(saved)))


def _document_answer(saved: list[StoredRecord]) -> dict:
    answer: dict[str, Any] = {"saved": _summary(saved)}
    found = _detected_issues(saved)
    if found:
        answer["warnings"] = safety_warnings(found, _bridge().mapper)
    return answer


def _summary(saved: list[StoredRecord]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in saved:
        out[s.concept] = out.get(s.concept, 0) + 1
    return out

