"""The request hook that audits every /fhir and /api access (one AuditEvent per request,
success or refusal), and the store listener that notes which patients a write touched.

Reads and searches fail closed: if their AuditEvent cannot be stored, the client gets a 500
instead of the data. A write has committed before its audit is stored, so an audit failure
there is logged (without clinical content) and the write's answer stands."""

from __future__ import annotations

import logging

import orjson
from flask import Flask, Response, current_app, g, has_request_context, request

from ..api.outcome import operation_outcome, outcome_response
from ..model import concept_by_collection
from .events import AuditEntry, record

log = logging.getLogger("fhir_bridge.audit")

UNAUDITED = ("/fhir/metadata", "/api/v1/openapi.json")
_FHIR_SUBTYPES = {"fhir.read": "read", "fhir.vread": "vread",
                  "fhir.instance_history": "history-instance",
                  "fhir.type_history": "history-type", "fhir.search_type": "search-type",
                  "fhir.search_post": "search-type"}
_METHOD = {"POST": ("C", "create"), "PUT": ("U", "update"), "PATCH": ("U", "patch"),
           "DELETE": ("D", "delete")}


def audited_path(path: str) -> bool:
    return (path.startswith("/fhir") or path.startswith("/api/")) and path not in UNAUDITED


def note_write(conn, events) -> None:
    """Store listener: inside a request, remember what the write touched for the audit hook."""
    if not has_request_context():
        return
    touched = g.setdefault("audit_touched", {"entities": [], "patients": set(), "query": None})
    for event in events:
        touched["entities"].append(f"{event.resource_type}/{event.id}")
        if event.patient_id is not None:
            touched["patients"].add(event.patient_id)


def _action() -> tuple[str, str]:
    endpoint = request.endpoint or ""
    if endpoint in _FHIR_SUBTYPES:
        subtype = _FHIR_SUBTYPES[endpoint]
        return ("E" if subtype.startswith("search") else "R"), subtype
    if request.path.startswith("/fhir") and "$" in request.path:
        return "E", "operation"  # $validate (POST) stores nothing
    if endpoint == "fhir_writes.bundle":  # the view notes which kind of Bundle it was
        return "E", "batch" if g.get("fhir_bundle_type") == "batch" else "transaction"
    if request.method in _METHOD:
        return _METHOD[request.method]
    view_args = request.view_args or {}
    if "record_id" in view_args or "resource_id" in view_args:
        return "R", "read"
    return "E", "search-type"


def _api_patients(response: Response) -> set[str]:
    """Patients a successful /api read answered about, from the JSON it sent."""
    if not response.is_json or response.direct_passthrough:
        return set()
    try:
        body = orjson.loads(response.get_data())
    except orjson.JSONDecodeError:
        return set()
    items = body.get("items", [body]) if isinstance(body, dict) else []
    collection = (request.view_args or {}).get("collection_name")
    concept = concept_by_collection(collection) if collection else None
    out = set()
    for item in items:
        if not isinstance(item, dict):
            continue
        if concept is not None and concept.name == "patient" and "id" in item:
            out.add(item["id"])
        elif isinstance(item.get("patient_id"), str):
            out.add(item["patient_id"])
    return out


def _entry(response: Response) -> AuditEntry:
    bridge = current_app.extensions["fhir_bridge"]
    action, subtype = _action()
    touched = g.get("audit_touched") or {"entities": [], "patients": set(), "query": None}
    patients = set(touched["patients"])
    if request.path.startswith("/api/") and request.method == "GET" and response.status_code < 300:
        patients |= _api_patients(response)
    principal = g.get("principal")
    status = response.status_code
    outcome = "0" if status < 400 else "4" if status < 500 else "8"
    patient_id = next(iter(patients)) if len(patients) == 1 else None
    patient_refs = sorted(bridge.mapper.reference("patient", p) for p in patients)
    query = touched["query"]
    if query is None and action == "E" and request.query_string:
        query = request.query_string.decode("utf-8", "replace")
    return AuditEntry(
        action=action, subtype=subtype, outcome=outcome,
        agent=getattr(principal, "subject", None),
        client_id=getattr(principal, "client_id", None),
        patient_id=patient_id,
        patient_reference=patient_refs[0] if len(patient_refs) == 1 else None,
        entities=(patient_refs if len(patient_refs) > 1 else []) + touched["entities"][:200],
        query=query, description=f"{request.method} {request.url_rule or '(no route)'} "
                                 f"-> HTTP {status}",
        network_address=request.remote_addr)


def register(app: Flask) -> None:
    @app.after_request
    def _audit(response: Response) -> Response:
        if not audited_path(request.path):
            return response
        try:
            record(current_app.extensions["fhir_bridge"].engine, _entry(response))
        except Exception as exc:  # noqa: BLE001 - any storage failure
            log.error("audit event not stored: %s", type(exc).__name__)
            if request.method in ("GET", "HEAD") and response.status_code < 400:
                return outcome_response(500, operation_outcome(
                    "the access could not be audited, so nothing is returned", [],
                    "exception"))
        return response
