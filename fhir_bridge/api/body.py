"""Reading request bodies: JSON content type, size limit (Flask MAX_CONTENT_LENGTH), strict
parsing.

A body with a Content-Length over the limit is refused by Flask (413). A body without one
(``Transfer-Encoding: chunked``) would be cut at the limit by werkzeug and the rest silently
dropped, so :class:`BodyLimit` reads such a body in full first, up to one byte over the
limit: over it, the request is marked and refused with 413 before any view runs
(``fhir_bridge.api.screen``)."""

from __future__ import annotations

import io
from typing import Any, Callable, Iterable

from flask import request

from ..errors import UnsupportedMediaType
from ..fhir import jsonio

JSON_TYPES = ("application/json", "application/fhir+json")
#: WSGI environ keys BodyLimit sets when a streamed body cannot be used.
TOO_LARGE = "fhir_bridge.body_too_large"
BROKEN = "fhir_bridge.body_broken"


def json_body() -> Any:
    if request.mimetype not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"send the body as {' or '.join(JSON_TYPES)} (got {request.mimetype or 'none'})")
    return jsonio.strict_loads(request.get_data(cache=True))


class BodyLimit:
    """WSGI middleware: a streamed body (no Content-Length; the server decodes the chunks and
    sets ``wsgi.input_terminated``) is read here, at most ``limit + 1`` bytes, and handed on as
    an ordinary body with a Content-Length. One byte over the limit marks the request
    ``TOO_LARGE``, a broken chunk encoding marks it ``BROKEN``; the app then gets no body."""

    def __init__(self, app: Callable, limit: int):
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("wsgi.input_terminated") and not environ.get("CONTENT_LENGTH"):
            data = b""
            try:
                data = _read_at_most(environ["wsgi.input"], self.limit + 1)
            except (OSError, ValueError):
                environ[BROKEN] = True
            if len(data) > self.limit:
                environ[TOO_LARGE] = True
                data = b""
            # From here on an ordinary body (werkzeug ignores Content-Length while the
            # request says chunked).
            environ["wsgi.input"] = io.BytesIO(data)
            environ["CONTENT_LENGTH"] = str(len(data))
            environ.pop("wsgi.input_terminated")
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)


def _read_at_most(stream, size: int) -> bytes:
    parts: list[bytes] = []
    left = size
    while left > 0:
        part = stream.read(min(left, 65536))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)
