"""Reading request bodies: JSON content type, size limit (Flask MAX_CONTENT_LENGTH), strict
parsing."""

from __future__ import annotations

from typing import Any

from flask import request

from ..errors import UnsupportedMediaType
from ..fhir import jsonio

JSON_TYPES = ("application/json", "application/fhir+json")


def json_body() -> Any:
    if request.mimetype not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"send the body as {' or '.join(JSON_TYPES)} (got {request.mimetype or 'none'})")
    return jsonio.strict_loads(request.get_data(cache=True))
