"""The one exception family of fhir-bridge.

Every error that reaches a client is one of these; `fhir_bridge.api.errors` turns each into an
OperationOutcome with the HTTP status below. Sync code uses ``retryable`` to tell transient
failures (wait and retry) from permanent ones (dead-letter).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Issue:
    """One problem, located by a path into the input (dotted, with [i] for list items)."""

    path: str
    message: str
    code: str = "invalid"  # an OperationOutcome issue-type code
    severity: str = "error"


class BridgeError(Exception):
    """Base of every fhir-bridge error."""

    status = 500
    code = "exception"
    retryable = False

    def __init__(self, message: str, issues: list[Issue] | None = None):
        super().__init__(message)
        self.message = message
        self.issues = list(issues or [])


class InvalidInput(BridgeError):
    """Input failed validation: each bad field is one Issue (HTTP 422)."""

    status = 422
    code = "invalid"


class BadRequest(BridgeError):
    """The request itself is malformed: not JSON, wrong content type, bad search syntax (400)."""

    status = 400
    code = "invalid"


class Unauthorized(BridgeError):
    """No usable bearer token: missing, malformed, expired, badly signed or from an unknown
    issuer (401). ``error`` is the RFC 6750 error code for WWW-Authenticate (None when the
    request carried no token at all)."""

    status = 401
    code = "login"

    def __init__(self, message: str, error: str | None = "invalid_token",
                 issues: list[Issue] | None = None):
        super().__init__(message, issues)
        self.error = error

    @property
    def www_authenticate(self) -> str:
        if self.error is None:
            return 'Bearer realm="fhir-bridge"'
        return f'Bearer realm="fhir-bridge", error="{self.error}"'


class Forbidden(BridgeError):
    """A valid token whose scopes or patient context do not allow this request (403)."""

    status = 403
    code = "forbidden"


class NotFound(BridgeError):
    status = 404
    code = "not-found"


class Gone(BridgeError):
    """The resource existed and was deleted (410)."""

    status = 410
    code = "deleted"


class MethodNotAllowed(BridgeError):
    status = 405
    code = "not-supported"


class NotAcceptable(BridgeError):
    """The client accepts no format this server answers in (406)."""

    status = 406
    code = "not-supported"


class Conflict(BridgeError):
    """The request clashes with stored state: duplicate id, idempotency key reuse, version (409)."""

    status = 409
    code = "conflict"


class PreconditionFailed(Conflict):
    """A stale version in If-Match on the FHIR API (412, as FHIR's update rules say; the JSON
    API answers 409 for the same race)."""

    status = 412


class UnsupportedMediaType(BridgeError):
    status = 415
    code = "not-supported"


class PayloadTooLarge(BridgeError):
    status = 413
    code = "too-costly"


class MappingError(BridgeError):
    """A mapping file or transform is wrong, or a record cannot be mapped (phase says where)."""

    status = 500
    code = "processing"

    def __init__(self, message: str, phase: str = "render", issues: list[Issue] | None = None):
        super().__init__(f"[{phase}] {message}", issues)
        self.phase = phase


class FhirValidationError(BridgeError):
    """A resource failed fhir.resources R4B validation. Outgoing: a bug (500); incoming: 422."""

    status = 422
    code = "structure"


class RemoteError(BridgeError):
    """An external FHIR server answered with an error or could not be reached."""

    status = 502
    code = "transient"

    def __init__(self, message: str, http_status: int | None = None,
                 retry_after: float | None = None, body: object = None):
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after
        self.body = body


class RemoteUnavailable(RemoteError):
    """Connection refused or reset, timeout, 429 or 5xx: retry later."""

    retryable = True


class RemoteRejected(RemoteError):
    """A 4xx other than 429 (and other than 409/412 version conflicts): do not retry."""

    code = "processing"


class RemoteConflict(RemoteError):
    """409/412: the remote resource changed since we last saw it."""

    code = "conflict"


class RemoteGarbage(RemoteUnavailable):
    """The server answered 2xx with a body that is not the FHIR JSON we asked for."""


@dataclass
class Warnings:
    """Non-fatal findings collected while processing (returned as OperationOutcome warnings)."""

    issues: list[Issue] = field(default_factory=list)

    def add(self, path: str, message: str, code: str = "informational") -> None:
        self.issues.append(Issue(path, message, code, "warning"))
