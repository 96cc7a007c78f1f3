"""The one place FHIR JSON is encoded, decoded and hashed (orjson)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Iterator

import orjson

from ..errors import BadRequest, InvalidInput, Issue

#: Control characters no JSON body may hold in a string or a key: C0 but tab, LF and CR,
#: DEL and C1. (PostgreSQL cannot store U+0000 at all.) Free text in records allows the same.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: Every control character: not in one-line record fields (names, ids, codes), paths, queries.
CONTROL_ANY = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_ISSUES = 20


def dumps(doc: Any) -> str:
    return orjson.dumps(doc).decode()


def dumpb(doc: Any) -> bytes:
    return orjson.dumps(doc)


def loads(text: str | bytes) -> Any:
    return orjson.loads(text)


def strict_loads(body: bytes) -> Any:
    """Parse a request body: strict JSON only (no NaN or Infinity, no trailing garbage, valid
    UTF-8), each key at most once per object (400), and no control characters in strings or
    keys (422). Issues name the place as record fields are named: ``a.b[0].c``."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("the body is not valid JSON", [Issue("(body)", str(exc))]) from None
    repeated = _repeated_keys(body)
    if repeated:
        raise BadRequest("the body gives a key twice in one object",
                         [Issue(path, "is given more than once") for path in repeated])
    bad = [Issue(path, f"must not contain control characters (found U+{ord(char):04X})")
           for path, char in _control_characters(doc)] if _MAYBE_CONTROL.search(body) else []
    if bad:
        raise InvalidInput("the body holds control characters", bad)
    return doc


#: Bytes without which no string of a body can hold a control character (JSON escapes,
#: DEL, C1 in UTF-8); raw C0 bytes are not valid JSON. A match only means "look closer".
_MAYBE_CONTROL = re.compile(rb"\\u00|\\[bf]|\x7f|\xc2[\x80-\x9f]")


class _Repeats(dict):
    """An object of the body that names some key more than once."""

    repeated: list[str]


def _repeated_keys(body: bytes) -> list[str]:
    """Paths of keys given twice. orjson keeps the last silently, so the body (valid JSON by
    now) is read once more by the standard library, which shows every key."""
    if body.count(b'"') < 4:
        return []
    any_repeated = []

    def pairs(items: list[tuple[str, Any]]) -> dict:
        obj = dict(items)
        if len(obj) == len(items):
            return obj
        out = _Repeats(obj)
        seen: set[str] = set()
        out.repeated = [k for k, _ in items if k in seen or seen.add(k)]
        any_repeated.append(True)
        return out

    doc = json.loads(body, object_pairs_hook=pairs)
    if not any_repeated:
        return []
    found: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key in getattr(node, "repeated", ()):
                found.append(_join(where, key))
            for key, value in node.items():
                walk(value, _join(where, key))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}[{index}]")

    walk(doc, "")
    return found[:MAX_ISSUES]


def _control_characters(doc: Any) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for where, text in _strings(doc, ""):
        match = CONTROL.search(text)
        if match:
            found.append((where or "(body)", match.group()))
            if len(found) == MAX_ISSUES:
                break
    return found


def _strings(node: Any, where: str) -> Iterator[tuple[str, str]]:
    """(path, text) of every string and every key of a parsed body."""
    if isinstance(node, str):
        yield where, node
    elif isinstance(node, dict):
        for key, value in node.items():
            path = _join(where, key)
            yield path, key
            yield from _strings(value, path)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _strings(item, f"{where}[{index}]")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def content_hash(doc: Any) -> str:
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
