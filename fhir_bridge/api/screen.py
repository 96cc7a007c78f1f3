"""The first check of every request, before authentication and before any view: the path,
the query string and the header values must be text a record or a search can hold, and a
streamed body must have fit the size limit (``fhir_bridge.api.body.BodyLimit``).

- path, query and form body (after percent-decoding) must be valid UTF-8 without control
  characters (U+0000-U+001F, U+007F-U+009F): ``%00`` or ``%FF`` answers 400 naming ``(path)``
  or the parameter; PostgreSQL cannot even compare a text holding U+0000;
- header values must not hold control characters other than tab (RFC 9110 field values);
- a streamed body over ``max_request_bytes`` answers 413, a broken chunk encoding 400.

Every refusal is a BridgeError, so it is an OperationOutcome like any other error.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from flask import Flask, current_app, request

from ..errors import BadRequest, Issue, PayloadTooLarge
from ..fhir import jsonio
from .body import BROKEN, TOO_LARGE

FORM = "application/x-www-form-urlencoded"
_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _text_problem(raw: bytes) -> str | None:
    """Why these decoded URL bytes are not acceptable text, or None."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "must be UTF-8 (percent-encode each byte of a UTF-8 character)"
    found = jsonio.CONTROL_ANY.search(text)
    if found:
        return f"must not contain control characters (found U+{ord(found.group()):04X})"
    return None


def _wsgi_bytes(value: str) -> bytes:
    """A WSGI environ string is the raw bytes, one character per byte (PEP 3333)."""
    return value.encode("latin-1", "replace")


def _query_issues(query: str) -> list[Issue]:
    issues = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        raw_name = unquote_to_bytes(_wsgi_bytes(name).replace(b"+", b" "))
        raw_value = unquote_to_bytes(_wsgi_bytes(value).replace(b"+", b" "))
        name_problem = _text_problem(raw_name)
        # A bad or empty name cannot be an expression: the query as a whole is named.
        where = "(query)" if name_problem or not raw_name else raw_name.decode("utf-8")
        problem = name_problem or _text_problem(raw_value)
        if problem:
            issues.append(Issue(where, problem))
    return issues


def _header_issues(environ: dict) -> list[Issue]:
    issues = []
    for key, value in environ.items():
        if not isinstance(value, str):
            continue
        if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            found = _HEADER_CONTROL.search(value)
            if found:
                name = key.removeprefix("HTTP_").replace("_", "-").title()
                issues.append(Issue(name, "must not contain control characters (found "
                                          f"U+{ord(found.group()):04X})"))
    return issues


def _raw_path(environ: dict) -> bytes:
    """The path as the client sent it, percent-decoded. Servers decode PATH_INFO with
    replacement characters (werkzeug) or not at all as UTF-8, so the request target is read
    where the server keeps it (RAW_URI: gunicorn and werkzeug; REQUEST_URI: uWSGI, werkzeug)."""
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if target is None:
        return _wsgi_bytes(environ.get("PATH_INFO", ""))
    path = target.partition("?")[0].partition("#")[0]
    if "://" in path:  # absolute form: http://host/path
        path = "/" + path.partition("://")[2].partition("/")[2]
    return unquote_to_bytes(_wsgi_bytes(path))


def check_request() -> None:
    environ = request.environ
    issues = []
    problem = _text_problem(_raw_path(environ))
    if problem:
        issues.append(Issue("(path)", problem))
    issues += _query_issues(environ.get("QUERY_STRING", ""))
    if request.mimetype == FORM and not environ.get(TOO_LARGE):
        # A form body is a query too (POST /fhir/{type}/_search). Read within the size limit
        # (413 over it) and cached, so the form parser reads the same bytes.
        issues += _query_issues(request.get_data(cache=True).decode("latin-1"))
    issues += _header_issues(environ)
    if issues:
        raise BadRequest("the request holds bytes that are not allowed",
                         issues[:jsonio.MAX_ISSUES])
    if environ.get(TOO_LARGE):
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes",
                              [Issue("(body)", f"must be at most {limit} bytes",
                                     "too-costly")])
    if environ.get(BROKEN):
        raise BadRequest("the body's chunked encoding is broken",
                         [Issue("(body)", "is not valid chunked transfer encoding")])


def install(app: Flask) -> None:
    """Before every other before_request hook (register it first)."""
    app.before_request(check_request)
