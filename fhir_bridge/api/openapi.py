"""The OpenAPI document of the internal API, built from the concept registry's schemas."""

from __future__ import annotations

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Response

from .. import __version__
from ..fhir import jsonio
from ..model import CONCEPTS
from ..model.medication import DiscontinuationSchema, DoseChangeSchema

bp = Blueprint("openapi", __name__)

_ERRORS = {
    "400": {"description": "Malformed request (also: %00, a control character or invalid "
                           "UTF-8 in the path or query)", "content": {
        "application/fhir+json": {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}},
    "404": {"description": "No such record", "content": {
        "application/fhir+json": {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}},
    "409": {"description": "Conflict with stored state", "content": {
        "application/fhir+json": {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}},
    "415": {"description": "Not JSON", "content": {
        "application/fhir+json": {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}},
    "422": {"description": "Invalid fields, each named in the OperationOutcome", "content": {
        "application/fhir+json": {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}}},
}


def _with_warnings(description: str) -> dict:
    """A saved prescription: the record, plus ``warnings`` when the medication safety checks
    (mappings/medication-safety.yaml) found issues. Warnings never block the save."""
    return {"description": description + ". When the medication safety checks find a "
                                          "maximum-dose, duplicate-therapy or combination "
                                          "issue, or the drug is not recognised (not "
                                          "checked), `warnings` follows the record's fields: an "
                                          "OperationOutcome with one warning issue per finding "
                                          "(also stored as a DetectedIssue). It is not part "
                                          "of the record; do not send it back.",
            "content": {"application/json": {"schema": {  # the record's fields + warnings
                "$ref": "#/components/schemas/SavedPrescription"}}}}


def _errors(*codes: str) -> dict:
    return {code: _ERRORS[code] for code in codes}


def build_spec() -> dict:
    spec = APISpec(title="fhir-bridge internal API", version=__version__, openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()],
                   info={"description": "Behavioral-health medication-management records. "
                                        "Every change is mapped to FHIR R4 and queued for sync."})
    spec.components.schema("OperationOutcome", {"type": "object", "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {"type": "array", "items": {"type": "object"}}}})
    for concept in CONCEPTS:
        name = concept.schema.__name__.removesuffix("Schema")
        if name not in spec.components.schemas:
            spec.components.schema(name, schema=concept.schema)
        ref = {"$ref": f"#/components/schemas/{name}"}
        body = {"required": True, "content": {"application/json": {"schema": ref}}}
        ok = {"description": "The record", "content": {"application/json": {"schema": ref}}}
        saved = ok
        if concept.name == "prescription":
            saved = _with_warnings("The record")
        base = f"/api/v1/{concept.collection}"
        record_id = {"name": "record_id", "in": "path", "required": True,
                     "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9.\\-]{0,47}$"}}
        spec.path(path=base, operations={
            "get": {"summary": f"List {concept.collection}", "parameters": [
                {"name": "patient_id", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                {"name": "after", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "A page", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {
                        "items": {"type": "array", "items": ref},
                        "next": {"type": "string", "nullable": True}}}}}},
                    **_errors("400")}},
            "post": {"summary": f"Create a {concept.name}", "requestBody": body,
                     "parameters": [{"name": "Idempotency-Key", "in": "header",
                                     "schema": {"type": "string", "maxLength": 200}}],
                     "responses": {"201": saved, **_errors("400", "409", "415", "422")}},
        })
        spec.path(path=base + "/{record_id}", operations={
            "get": {"summary": f"Read a {concept.name}", "parameters": [record_id],
                    "responses": {"200": ok, "304": {"description": "Not modified"},
                                  **_errors("400", "404")}},
            "put": {"summary": f"Update a {concept.name}", "requestBody": body,
                    "parameters": [record_id, {"name": "If-Match", "in": "header",
                                               "schema": {"type": "string"}}],
                    "responses": {"200": saved,
                                  **_errors("400", "404", "409", "415", "422")}},
        })
    record = spec.components.schemas["Prescription"]  # closed: warnings is listed here
    spec.components.schema("SavedPrescription", {**record, "properties": {
        **record["properties"], "warnings": {"$ref": "#/components/schemas/OperationOutcome"}}})
    for name, schema in (("DoseChange", DoseChangeSchema),
                         ("Discontinuation", DiscontinuationSchema)):
        if name not in spec.components.schemas:
            spec.components.schema(name, schema=schema)
    rx = {"$ref": "#/components/schemas/Prescription"}
    pid = {"name": "record_id", "in": "path", "required": True, "schema": {"type": "string"}}
    spec.path(path="/api/v1/prescriptions/{record_id}/dose-changes", operations={"post": {
        "summary": "Change the dose: a new prescription replaces this one", "parameters": [pid],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/DoseChange"}}}},
        "responses": {"201": _with_warnings("The new prescription"),
                      **_errors("400", "404", "409", "415", "422")}}})
    spec.path(path="/api/v1/prescriptions/{record_id}/discontinuation", operations={"post": {
        "summary": "Stop a prescription", "parameters": [pid],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Discontinuation"}}}},
        "responses": {"200": {"description": "The stopped prescription", "content": {
            "application/json": {"schema": rx}}}, **_errors("400", "404", "409", "415", "422")}}})
    spec.path(path="/api/v1/patients/{record_id}/score-trends", operations={"get": {
        "summary": "Rating-scale trends: baseline, latest, response, remission, review",
        "parameters": [pid],
        "responses": {"200": {"description": "One trend per instrument with a total"},
                      **_errors("400", "404")}}})
    spec.path(path="/api/v1/documents", operations={"post": {
        "summary": "Import an internal-record document in one transaction",
        "description": "A stored record the import would change is replaced only when its "
                       "record in the document states the version it replaces (`version`, "
                       "the number in its ETag); otherwise 409 names each such record and "
                       "nothing is stored (docs/model.md, Documents).",
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object"}}}},
        "responses": {"200": {"description": "Counts saved per concept (`saved`), and "
                                             "`warnings` (an OperationOutcome) when the "
                                             "medication safety checks found issues"},
                      **_errors("400", "409", "415", "422")}}})
    spec.path(path="/api/v1/questionnaire-responses", operations={"post": {
        "summary": "Record an assessment sent as a FHIR QuestionnaireResponse",
        "description": "The body is a QuestionnaireResponse (FHIR R4 JSON) answering one of the "
                       "Questionnaires served at /fhir/Questionnaire (`questionnaire`: its url). "
                       "It is checked against that Questionnaire (each unknown linkId, wrong "
                       "answer type, answer not among the options, missing required item is "
                       "one 422 issue at its path in the response), then scored and saved as "
                       "the assessment POST /api/v1/assessments saves for the same answers "
                       "(band, alerts, Flags, monitoring, subscriptions); the "
                       "QuestionnaireResponse is served at /fhir/QuestionnaireResponse/qr-<id>. "
                       "The assessment's id is the response's `id` when it is a valid record "
                       "id, else a new one. Needs a scope that grants create on "
                       "QuestionnaireResponse (docs/model.md, The questionnaire path).",
        "parameters": [{"name": "Idempotency-Key", "in": "header",
                        "schema": {"type": "string", "maxLength": 200}}],
        "requestBody": {"required": True, "content": {"application/fhir+json": {
            "schema": {"type": "object", "required": ["resourceType", "questionnaire"],
                       "properties": {"resourceType": {"type": "string",
                                                       "enum": ["QuestionnaireResponse"]}}}}}},
        "responses": {"201": {"description": "The assessment record", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Assessment"}}}},
            **_errors("400", "409", "415", "422")}}})
    spec.path(path="/healthz", operations={"get": {"summary": "Liveness and database check",
                                                   "responses": {"200": {"description": "OK"}}}})
    return spec.to_dict()


_CACHE: dict[str, bytes] = {}


@bp.get("/api/v1/openapi.json")
def openapi_json():
    if "spec" not in _CACHE:
        _CACHE["spec"] = jsonio.dumpb(build_spec())
    return Response(_CACHE["spec"], mimetype="application/json")
