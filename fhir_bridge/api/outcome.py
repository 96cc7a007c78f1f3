"""The one error handler: every error becomes an OperationOutcome with its HTTP status."""

from __future__ import annotations

import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from ..errors import BridgeError, Issue
from ..fhir import jsonio

log = logging.getLogger("fhir_bridge.api")

_HTTP_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
               405: "not-supported", 406: "not-supported", 409: "conflict", 412: "conflict",
               413: "too-costly", 414: "too-long", 415: "not-supported", 417: "not-supported",
               422: "invalid", 429: "throttled", 431: "too-long", 505: "not-supported"}
# Issue types of R4 (http://hl7.org/fhir/issue-type; "too-long" as listed in
# hl7.fhir.uv.extensions.r4-5.1.0 StructureMap-OperationOutcome4to5.json).


def http_issue_code(status: int) -> str:
    """The OperationOutcome issue type for an HTTP status without a BridgeError."""
    return _HTTP_CODES.get(status, "exception")


def operation_outcome(message: str, issues: list[Issue], code: str = "invalid",
                      severity: str = "error") -> dict:
    entries = [{"severity": i.severity, "code": i.code, "diagnostics": f"{i.path}: {i.message}",
                "expression": [i.path]} for i in issues]
    if not entries:
        entries = [{"severity": severity, "code": code, "diagnostics": message}]
    return {"resourceType": "OperationOutcome",
            "text": {"status": "generated",
                     "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>'
                            + _escape(message) + "</p></div>"},
            "issue": entries}


def safety_warnings(issues: list[dict], mapper) -> dict:
    """DetectedIssue records as an OperationOutcome of warnings: one issue each, coded with
    the rule (local code system medication-safety-rule), naming the field it is about and the
    DetectedIssue it was stored as. Validated like every resource the bridge writes."""
    from ..clinical.safety import warning_path
    from ..fhir.validate import validate_resource

    system = mapper.terminology.local_system("medication-safety-rule")
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "warning", "code": "informational",
         "details": {"coding": [{"system": system, "code": i["rule"], "display": i["text"]}],
                     "text": i["text"]},
         "diagnostics": f"{i['severity']}: {i['detail']} "
                        f"({mapper.reference('detected-issue', i['id'])}; source: "
                        f"{i['source']})",
         "expression": [warning_path(i["rule"])]} for i in issues]}
    validate_resource(outcome)
    return outcome


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def outcome_response(status: int, outcome: dict) -> Response:
    return Response(jsonio.dumpb(outcome), status=status, mimetype="application/fhir+json")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(BridgeError)
    def _bridge_error(exc: BridgeError):
        if exc.status >= 500:
            log.error("request failed: %s (%s)", type(exc).__name__, exc.code)
        response = outcome_response(exc.status, operation_outcome(exc.message, exc.issues,
                                                                  exc.code))
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = getattr(exc, "www_authenticate", "Bearer")
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        return outcome_response(status, operation_outcome(
            exc.description or exc.name, [], http_issue_code(status)))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # Only the type: messages and tracebacks can carry clinical data.
        log.error("unexpected error: %s", type(exc).__name__)
        return outcome_response(500, operation_outcome(
            "internal error; the change was not saved", [], "exception"))
