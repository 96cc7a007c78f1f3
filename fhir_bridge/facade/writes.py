"""The write interactions of /fhir: create (``POST [type]``, conditional with
``If-None-Exist``), update (``PUT [type]/[id]``, ``If-Match``), conditional update
(``PUT [type]?identifier=system|value``), delete (``DELETE [type]/[id]``), ``$validate``
(``POST [type]/$validate``: an OperationOutcome, nothing stored) and batch/transaction
Bundles at the base (transaction.py). Planning and saving are in plans.py.

Answers: 201 (or 200) with Location, ETag and Last-Modified; the body as ``Prefer: return=``
asks: ``representation`` (default), ``minimal`` (none) or ``OperationOutcome``. Medication
safety findings of the save are an OperationOutcome of warnings: the body with
``return=OperationOutcome``, else in the ``X-FHIR-Outcome`` header (compact JSON)."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime

from flask import Blueprint, Response, current_app, g, request
from werkzeug.routing import BaseConverter

from ..api.body import json_body
from ..api.outcome import operation_outcome
from ..errors import BadRequest, BridgeError, Issue
from ..fhir import jsonio
from . import conditional, plans, repository, transaction
from .responses import fhir
from .views import _negotiate, _resource_type, base_url

class TypeName(BaseConverter):
    """A resource type name: ``/fhir/metadata`` and ``/fhir/$export`` are not types."""

    regex = r"[A-Z][A-Za-z]{0,63}"
    weight = 50  # tried before the read routes' plain segments (so $validate is found)


class ResourceId(BaseConverter):
    """A FHIR id (R4 datatypes.html#id): ``_search``, ``_history`` and ``$op`` are not."""

    regex = r"[A-Za-z0-9\-.]{1,64}"
    weight = 50


bp = Blueprint("fhir_writes", __name__, url_prefix="/fhir")
bp.record_once(lambda state: state.app.url_map.converters.update(
    fhir_type=TypeName, fhir_id=ResourceId))  # before the rules below are added
bp.before_request(_negotiate)

OUTCOME_HEADER = "X-FHIR-Outcome"
RETURNS = ("minimal", "representation", "OperationOutcome")


def _bridge():
    return current_app.extensions["fhir_bridge"]


def prefer_return() -> str:
    for part in request.headers.get("Prefer", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip() == "return" and value.strip().strip('"') in RETURNS:
            return value.strip().strip('"')
    return "representation"


def location(result: plans.Result) -> str:
    stored = result.stored
    return f"{base_url()}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}"


def result_outcome(result: plans.Result) -> dict:
    """What the write did, with the save's safety warnings (an OperationOutcome)."""
    issues = list((result.warnings or {}).get("issue", []))
    done = {201: "created", 200: "updated", 204: "deleted"}[result.status]
    plan = result.plan
    issues.append({"severity": "information", "code": "informational",
                   "diagnostics": f"{plan.resource_type}/{plan.resource_id} {done}"})
    return {"resourceType": "OperationOutcome", "issue": issues}


def answer(result: plans.Result) -> Response:
    if result.status == 204:
        return Response(status=204)
    stored = result.stored
    headers = {"ETag": f'W/"{stored.version_id}"', "Location": location(result),
               "Last-Modified": format_datetime(stored.last_updated.astimezone(dt.timezone.utc),
                                                usegmt=True)}
    wanted = prefer_return()
    if result.warnings and wanted != "OperationOutcome":
        headers[OUTCOME_HEADER] = jsonio.dumps(result.warnings)
    if wanted == "minimal":
        return Response(status=result.status, headers=headers)
    body = result_outcome(result) if wanted == "OperationOutcome" else stored.resource()
    return fhir(body, result.status, headers)


def _found(stored) -> Response:
    """A conditional create that found its match: 200 with it, nothing stored."""
    headers = {"ETag": f'W/"{stored.version_id}"',
               "Location": f"{base_url()}/{stored.resource_type}/{stored.id}/_history/"
                           f"{stored.version_id}"}
    if prefer_return() == "minimal":
        return Response(status=200, headers=headers)
    return fhir(stored.resource(), 200, headers)


def _touched(results: list[plans.Result]) -> None:
    """Deletions and unchanged writes touch resources the store's listener does not report:
    the request's audit names them too."""
    audit = g.setdefault("audit_touched", {"entities": [], "patients": set(), "query": None})
    for r in results:
        ref = f"{r.plan.resource_type}/{r.plan.resource_id}"
        if ref not in audit["entities"]:
            audit["entities"].append(ref)


def run_one(build) -> Response:
    """Plan with ``build(conn)`` and save; a conditional create's match answers 200."""
    with _bridge().engine.connect() as conn:
        planned = build(conn)
    if not isinstance(planned, plans.Plan):
        return _found(planned)
    try:
        result = plans.execute([planned])[0]
    except conditional.Matched as found:
        return _found(found.stored)
    _touched([result])
    return answer(result)


@bp.post("/<fhir_type:resource_type>")
def create(resource_type: str):
    rtype = _resource_type(resource_type)
    body = json_body()
    if_none_exist = request.headers.get("If-None-Exist")
    return run_one(lambda conn: plans.plan_create(conn, body, rtype,
                                                  plans.stored_resolver(conn), if_none_exist))


@bp.put("/<fhir_type:resource_type>/<fhir_id:resource_id>")
def update(resource_type: str, resource_id: str):
    rtype = _resource_type(resource_type)
    body = json_body()
    version = plans.if_match_version(request.headers.get("If-Match"))
    return run_one(lambda conn: plans.plan_update(conn, body, rtype, resource_id,
                                                  plans.stored_resolver(conn), version))


@bp.put("/<fhir_type:resource_type>")
def conditional_update(resource_type: str):
    rtype = _resource_type(resource_type)
    query = request.query_string.decode("utf-8", "replace")
    if not query:
        raise BadRequest("an update names the resource: PUT [type]/[id], or PUT "
                         "[type]?identifier=system|value", [Issue("(query)", "is empty")])
    body = json_body()
    version = plans.if_match_version(request.headers.get("If-Match"))
    return run_one(lambda conn: plans.plan_conditional_update(
        conn, body, rtype, query, plans.stored_resolver(conn), version))


@bp.delete("/<fhir_type:resource_type>/<fhir_id:resource_id>")
def delete(resource_type: str, resource_id: str):
    rtype = _resource_type(resource_type)
    version = plans.if_match_version(request.headers.get("If-Match"))
    with _bridge().engine.connect() as conn:
        planned = plans.plan_delete(conn, rtype, resource_id, version)
    if planned is None:
        return Response(status=204)
    result = plans.execute([planned])[0]
    _touched([result])
    return answer(result)


@bp.post("/<fhir_type:resource_type>/$validate")
def validate(resource_type: str):
    """The write this resource would be (a create, or an update of the resource its id
    names), checked all the way through the save and rolled back: 200 with an
    OperationOutcome of its errors, or of its safety warnings and an information issue."""
    rtype = _resource_type(resource_type)
    body = json_body()
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        body = next((p.get("resource") for p in body.get("parameter") or []
                     if isinstance(p, dict) and p.get("name") == "resource"), None)
    try:
        with _bridge().engine.connect() as conn:
            resolve = plans.stored_resolver(conn)
            rid = body.get("id") if isinstance(body, dict) else None
            exists = rid is not None and repository.current(conn, rtype, str(rid))
            planned = plans.plan_update(conn, body, rtype, rid, resolve) if exists else \
                plans.plan_create(conn, body, rtype, resolve)
        result = plans.execute([planned], dry_run=True)[0]
        g.pop("audit_touched", None)  # rolled back: the audit names nothing as written
    except BridgeError as exc:
        if exc.status in (401, 403):
            raise
        return fhir(operation_outcome(exc.message, exc.issues, exc.code))
    issues = list((result.warnings or {}).get("issue", []))
    issues.append({"severity": "information", "code": "informational",
                   "diagnostics": f"the {rtype} is valid; nothing was stored"})
    return fhir({"resourceType": "OperationOutcome", "issue": issues})


@bp.post("")
@bp.post("/")
def bundle():
    """A batch or transaction Bundle (transaction.py)."""
    body = json_body()
    g.fhir_bundle_type = body.get("type") if isinstance(body, dict) else None
    response = transaction.process(body)
    _touched([r for r in response.results])
    return fhir(response.bundle)
