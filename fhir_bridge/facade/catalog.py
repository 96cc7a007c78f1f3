"""Catalog types: /fhir types the bridge builds rather than stores (its conformance resources,
Questionnaires, subscription topics, Bulk Data Groups). Each is searched by the one /fhir
engine (query.parse_search, search.run over a list of resources, responses.searchset) by the
parameters ``catalog`` declares in mappings/search-parameters.yaml: the same paging,
``_count`` cap, ``_sort``, ``_elements``, ``_summary``, ``_total`` and 400 OperationOutcome
naming each parameter it cannot take as for the types in the store.

A package registers a type's source with ``register`` (a function giving the resources the
caller may see, after checking the caller's access), which also serves the type's searches
(``GET [type]``, ``GET|POST [type]/_search``); the package serves its reads (``read_response``
answers from the source; ``read_answer`` answers a resource found otherwise), which take
``_summary`` and ``_elements`` as reads of stored types do.
``capability_entry`` is the type's CapabilityStatement entry, its search
parameters exactly the declared ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from flask import Flask, Response, current_app, g, request

from ..errors import NotFound
from . import parameters
from .negotiate import negotiate
from .query import MAX_COUNT, parse_search, sort_keys
from .responses import fhir, searchset
from .search import run
from .urls import fhir_base

EXTENSION = "fhir_catalog_sources"
Source = Callable[[], Iterable[dict]]


@dataclass(frozen=True)
class Registered:
    source: Source
    seen: Callable[[list[dict]], None] | None


def register(app: Flask, resource_type: str, source: Source,
             seen: Callable[[list[dict]], None] | None = None) -> None:
    """Make ``source`` the type's resources (``seen``: told the resources each search
    answers, e.g. for the audit), and serve its searches: ``GET [type]``, ``GET|POST
    [type]/_search`` (rules of their own, which win over the /fhir blueprint's ``<type>``
    rules and the type's ``[type]/<id>`` read)."""
    if parameters.catalog_for_type(resource_type) is None:
        raise ValueError(f"{resource_type} has no catalog entry in search-parameters.yaml")
    app.extensions.setdefault(EXTENSION, {})[resource_type] = Registered(source, seen)
    view = lambda: search_response(resource_type)  # noqa: E731
    app.add_url_rule(f"/fhir/{resource_type}", f"fhir_catalog_{resource_type}", view)
    app.add_url_rule(f"/fhir/{resource_type}/_search", f"fhir_catalog_search_{resource_type}",
                     view, methods=["GET", "POST"])


def source(resource_type: str) -> Source | None:
    """The registered source of a catalog type, None for any other type."""
    registered = current_app.extensions.get(EXTENSION, {}).get(resource_type)
    return registered.source if registered else None


def search_response(resource_type: str) -> Response:
    """The searchset of this request (``[type]?`` or ``[type]/_search``); the type's
    ``seen`` is told the page's resources."""
    from .views import search_args

    g.fhir_answer = negotiate(request.headers.get("Accept"), request.args.getlist("_format"),
                              request.args.getlist("_pretty"))
    spec = parameters.catalog_for_type(resource_type)
    search = parse_search(resource_type, search_args(), spec)
    result = run(source(resource_type)(), search)
    seen = current_app.extensions[EXTENSION][resource_type].seen
    if seen is not None:
        seen([m.resource() for m in result.matches])
    base = fhir_base(current_app.extensions["fhir_bridge"].config)
    return fhir(searchset(base, resource_type, search, result))


def find(resource_type: str, resource_id: str) -> dict | None:
    """One resource of a catalog type by id (from its source, so with its access check)."""
    return next((r for r in source(resource_type)() if r.get("id") == resource_id), None)


def read_response(resource_type: str, resource_id: str, hint: str = "",
                  headers: dict | None = None) -> Response:
    found = find(resource_type, resource_id)
    if found is None:
        raise NotFound(f"{resource_type}/{resource_id} is not known"
                       + (f": {hint}" if hint else ""))
    return read_answer(found, headers)


def read_answer(resource: dict, headers: dict | None = None) -> Response:
    """The answer to a read of a catalog resource: ``_summary`` and ``_elements`` applied
    (and checked, 400 naming each) exactly as on a read of a stored type."""
    from .views import read_subset

    return fhir(read_subset(resource["resourceType"]).apply(resource), headers=headers)


def search_params(spec: parameters.ResourceSearch) -> list[dict[str, Any]]:
    """CapabilityStatement searchParam entries: exactly the declared parameters."""
    return [{"name": p.name, "type": p.type, **({"documentation": p.doc} if p.doc else {})}
            for p in spec.params.values()]


def capability_entry(resource_type: str, about: str = "",
                     interactions: Iterable[str] = ("read", "search-type"),
                     **extra: Any) -> dict[str, Any]:
    """The CapabilityStatement.rest.resource entry of a catalog type."""
    spec = parameters.catalog_for_type(resource_type)
    search = (f"Search with GET [type]?, GET [type]/_search? or POST [type]/_search (form). "
              f"_sort by {', '.join(sort_keys(spec))} (prefix - for descending); _count "
              f"(capped at {MAX_COUNT}), _offset; _summary (true, text, data, count, false); "
              f"_elements; _total (always exact). No _include, _revinclude, _has or chains.")
    return {"type": resource_type, **extra,
            "documentation": f"{about} {search}" if about else search,
            "interaction": [{"code": code} for code in interactions],
            "searchParam": search_params(spec)}
