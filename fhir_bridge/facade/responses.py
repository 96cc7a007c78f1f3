"""Responses of /fhir: the negotiated media type, ``_pretty`` indentation, no empty arrays or
objects anywhere (FHIR JSON forbids them), and Bundles with complete paging links."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
from flask import Response, g

from .negotiate import FHIR_JSON, Answer

DEFAULT = Answer(f"{FHIR_JSON}; charset=utf-8", False)


def prune(node: Any) -> Any:
    """``node`` without empty arrays, empty objects, nulls and empty strings, at any depth
    (an object or array that only held such things goes too)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            value = prune(value)
            if value not in (None, "", [], {}):
                out[key] = value
        return out
    if isinstance(node, list):
        items = (prune(item) for item in node)
        return [item for item in items if item not in (None, "", [], {})]
    return node


def answer() -> Answer:
    return g.get("fhir_answer", DEFAULT)


def conform(data: bytes, pretty: bool) -> bytes | None:
    """JSON bytes with no empties and indented when ``pretty``, or None when they already
    are. Looking for ``[]``, ``{}`` and ``""`` in the bytes costs far less than walking every
    resource of a large Bundle; only a document that has one (or a string that looks like
    one) is parsed, pruned and encoded again."""
    has_empty = b"[]" in data or b"{}" in data or b'""' in data
    indented = data.startswith(b"{\n")
    if not has_empty and indented == pretty:
        return None
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if has_empty:
        body = prune(body)
    out = orjson.dumps(body, option=orjson.OPT_INDENT_2 if pretty else 0)
    return None if out == data else out


def fhir(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    """A FHIR JSON answer in the negotiated media type (hooks.after_request removes empties
    and indents, for this blueprint's answers and every other under /fhir alike)."""
    chosen = answer()
    option = orjson.OPT_INDENT_2 if chosen.pretty else 0
    return Response(orjson.dumps(body, option=option), status=status, headers=headers or {},
                    content_type=chosen.content_type)


def bundle(kind: str, total: int, entries: list[dict], url: str, args: list[tuple[str, str]],
           count: int, offset: int) -> dict:
    """A searchset or history Bundle; each link repeats the query with the page's
    ``_count`` (the real page size, after capping) and ``_offset``."""
    def link(relation: str, at: int) -> dict:
        query = urlencode([*args, ("_count", str(count)), ("_offset", str(at))])
        return {"relation": relation, "url": f"{url}?{query}"}

    links = [link("self", offset), link("first", 0)]
    if count and offset > 0:
        links.append(link("previous", max(0, offset - count)))
    if count and offset + count < total:
        links.append(link("next", offset + count))
    if count and total:
        links.append(link("last", ((total - 1) // count) * count))
    out = {"resourceType": "Bundle", "type": kind, "total": total, "link": links}
    if entries:
        out["entry"] = entries
    return out


def searchset(base: str, path: str, search: Any, result: Any) -> dict:
    """The searchset Bundle of a search's result (search.Search, search.SearchResult): the
    page's matches and includes as asked (``_summary``, ``_elements``), or only the total
    for ``_summary=count``; ``path`` is where the search was made (``CarePlan``,
    ``Patient/p1/CarePlan``)."""
    if search.summary_count:
        return {"resourceType": "Bundle", "type": "searchset", "total": result.total}
    subset = search.subset
    entries = [{"fullUrl": f"{base}/{s.resource_type}/{s.id}",
                "resource": subset.apply(s.resource()), "search": {"mode": "match"}}
               for s in result.matches]
    entries += [{"fullUrl": f"{base}/{s.resource_type}/{s.id}",
                 "resource": subset.apply(s.resource(), primary=False),
                 "search": {"mode": "include"}} for s in result.included]
    return bundle("searchset", result.total, entries, f"{base}/{path}", search.canonical,
                  search.count, search.offset)
