"""HTTP conformance for everything under /fhir (the facade's routes and the other blueprints
mounted there): CORS and its preflight, ``Allow`` on every 405, no empty arrays or objects
in any JSON answer, ``_pretty`` on errors too.

Installed once by the facade blueprint (``install`` runs when create_app registers it), so
the app factory needs no change."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from ..config import fhir_api_settings
from .responses import conform

EXTENSION = "fhir_bridge.fhir_http"
CORS_PATHS = ("/fhir", "/.well-known/smart-configuration")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_REQUEST_HEADERS = ("authorization", "accept", "content-type", "if-match",
                           "if-none-match", "if-modified-since", "prefer", "x-request-id")
EXPOSED = ("ETag, Location, Content-Location, Last-Modified, WWW-Authenticate, "
           "X-FHIR-Outcome")  # a write's OperationOutcome (writes.py)
#: Routes that only exist to refuse (the read-only types' writes): not part of Allow.
REFUSING_ENDPOINTS = frozenset({"fhir.not_writable", "fhir.unknown_operation",
                                "fhir_conformance.not_writable"})


def _under(path: str, prefixes: Iterable[str]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


class Cors:
    """Which origins may read /fhir from a browser (none unless configured)."""

    def __init__(self, origins: tuple[str, ...], max_age: int):
        self.origins = origins
        self.max_age = max_age

    def allows(self, origin: str | None) -> bool:
        return bool(origin) and ("*" in self.origins or origin.rstrip("/") in self.origins)

    def preflight_headers(self, origin: str, requested: str | None) -> list[tuple[str, str]]:
        wanted = [h.strip() for h in (requested or "").split(",") if h.strip()]
        allowed = [h for h in wanted if h.lower() in ALLOWED_REQUEST_HEADERS]
        headers = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin"),
                   ("Access-Control-Allow-Methods", ", ".join(METHODS)),
                   ("Access-Control-Max-Age", str(self.max_age)), ("Content-Length", "0")]
        if allowed:
            headers.append(("Access-Control-Allow-Headers", ", ".join(allowed)))
        return headers


class Preflight:
    """WSGI middleware answering CORS preflights (OPTIONS with Origin and
    Access-Control-Request-Method) from allowed origins with 204, before the bearer-token
    check: a browser sends a preflight without the Authorization header."""

    def __init__(self, app: Callable, cors: Cors):
        self.app = app
        self.cors = cors

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        origin = environ.get("HTTP_ORIGIN")
        if (environ.get("REQUEST_METHOD") == "OPTIONS"
                and environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD")
                and _under(environ.get("PATH_INFO", ""), CORS_PATHS)
                and self.cors.allows(origin)):
            start_response("204 No Content", self.cors.preflight_headers(
                origin, environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS")))
            return [b""]
        return self.app(environ, start_response)


def allowed_methods(app: Flask) -> list[str]:
    """The methods the request's path really serves (routes that only refuse left out)."""
    adapter = app.url_map.bind_to_environ(request.environ)
    out = []
    for method in METHODS:
        try:
            endpoint, _ = adapter.match(method=method)
        except HTTPException:
            continue
        if endpoint not in REFUSING_ENDPOINTS:
            out.append(method)
    return out


JSON_TYPES = ("application/fhir+json", "application/json")


def _wants_pretty() -> bool:
    answer = g.get("fhir_answer")
    return answer.pretty if answer is not None else request.args.get("_pretty") == "true"


def _conform_json(response: Response) -> None:
    """No empty arrays, objects or strings in any /fhir JSON (errors and other blueprints'
    answers included), indented when the request asked for ``_pretty=true``."""
    if response.mimetype not in JSON_TYPES or response.is_streamed or \
            response.direct_passthrough:
        return
    data = response.get_data()
    if not data:
        return
    fixed = conform(data, _wants_pretty())
    if fixed is not None:
        response.set_data(fixed)


def after_request(response: Response) -> Response:
    path = request.path
    if _under(path, ("/fhir",)):
        _conform_json(response)
    if response.status_code == 405 and _under(path, ("/fhir",)) and "Allow" not in \
            response.headers:
        response.headers["Allow"] = ", ".join(allowed_methods(current_app))
    cors: Cors | None = current_app.extensions.get(EXTENSION)
    origin = request.headers.get("Origin")
    if cors is not None and _under(path, CORS_PATHS):
        response.headers.add("Vary", "Origin")  # caches must not mix origins' answers
        if cors.allows(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED
    return response


def install(app: Flask) -> None:
    """Check the /fhir settings (a bad one stops start-up) and register the hooks."""
    settings = fhir_api_settings(app.extensions["fhir_bridge"].config)
    if settings["cors_origins"]:
        cors = Cors(settings["cors_origins"], settings["cors_max_age"])
        app.extensions[EXTENSION] = cors
        app.wsgi_app = Preflight(app.wsgi_app, cors)
    app.after_request(after_request)
