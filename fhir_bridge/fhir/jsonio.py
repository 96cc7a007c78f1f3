"""The one place FHIR JSON is encoded, decoded and hashed (orjson)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ..errors import BadRequest, Issue


def dumps(doc: Any) -> str:
    return orjson.dumps(doc).decode()


def dumpb(doc: Any) -> bytes:
    return orjson.dumps(doc)


def loads(text: str | bytes) -> Any:
    return orjson.loads(text)


def strict_loads(body: bytes) -> Any:
    """Parse a request body: strict JSON only (no NaN or Infinity, no trailing garbage)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the body is not valid JSON", [Issue("(body)", str(exc))]) from None


def content_hash(doc: Any) -> str:
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
