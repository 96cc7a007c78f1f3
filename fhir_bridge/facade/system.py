"""System-level interactions on the FHIR base: ``GET /fhir?_type=A,B&...`` (search across
types, with the parameters every type has) and ``GET /fhir/_history``. Both run through the
same engine as type search and history (search.run, repository.history) and see what the
token lets them see: a type the token does not cover is refused when named, left out of
system history otherwise."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import request

from ..auth.principal import current_principal
from ..errors import BadRequest, Forbidden, Issue
from . import access, parameters, repository
from .query import parse_search
from .responses import bundle, fhir
from .search import run
from .sorting import SQL_KEYS
from .views import _bridge, _history_args, base_url, bp, history_bundle

#: System search takes what every type has; anything else needs a type search.
SYSTEM_PARAMS = {"_id", "_lastUpdated", "_count", "_offset", "_sort", "_summary", "_elements",
                 "_total", "_format", "_pretty", "_type"}


def _types(values: list[str]) -> tuple[list[str], list[Issue]]:
    named, issues = [], []
    for value in values:
        for rtype in value.split(","):
            if parameters.for_type(rtype) is None:
                issues.append(Issue("_type", f"{rtype!r} is not a resource type served here",
                                    "not-supported"))
            elif rtype not in named:
                named.append(rtype)
    if not values:
        issues.append(Issue("_type", "system search names its types: ?_type=Type1,Type2"))
    return named, issues


def _ordered(matches: list, sort: list[tuple[str, bool]]) -> list:
    """Matches of several types in the order SQL gives one type: the sort keys (_id,
    _lastUpdated), then type and id."""
    out = sorted(matches, key=lambda s: (s.resource_type, s.id))
    for name, descending in reversed(sort):  # stable sorts, last key first
        out.sort(key=(lambda s: s.id) if name == "_id" else (lambda s: s.last_updated),
                 reverse=descending)
    return out


@bp.get("")
@bp.get("/")
def system_search():
    args = list(request.args.items(multi=True))
    types, issues = _types([v for k, v in args if k == "_type"])
    for name, _ in args:
        if name.partition(":")[0] not in SYSTEM_PARAMS:
            issues.append(Issue(name, "system search takes _type, _id, _lastUpdated and the "
                                "result parameters; search a type for the others",
                                "not-supported"))
    if issues:
        raise BadRequest("the search cannot be run as written", issues)
    per_type = [(k, v) for k, v in args if k != "_type"]
    searches = [parse_search(rtype, per_type) for rtype in types]
    first = searches[0]
    if any(key not in SQL_KEYS for key, _ in first.sort):
        raise BadRequest("the search cannot be run as written", [Issue(
            "_sort", f"system search sorts by {', '.join(SQL_KEYS)}", "not-supported")])
    count, offset = first.count, first.offset
    total, matches = 0, []
    with _bridge().engine.connect() as conn:
        for search in searches:  # each type's first offset + count, merged, then the page
            viewer = access.viewer_for(conn, search.resource_type, "s")
            search.count, search.offset = offset + count, 0
            result = run(conn, search, viewer)
            total += result.total
            matches += result.matches
    matches = _ordered(matches, first.sort)[offset:offset + count]
    canonical = [("_type", ",".join(types)), *first.canonical]
    access.note_access(matches, urlencode(canonical))
    if first.summary_count:
        return fhir({"resourceType": "Bundle", "type": "searchset", "total": total})
    base = base_url()
    entries = [{"fullUrl": f"{base}/{s.resource_type}/{s.id}",
                "resource": first.subset.apply(s.resource()), "search": {"mode": "match"}}
               for s in matches]
    return fhir(bundle("searchset", total, entries, base, canonical, count, offset))


@bp.get("/_history")
def system_history():
    count, offset, since = _history_args()
    principal = current_principal()
    specs = parameters.load()
    readable = [rtype for rtype in specs if rtype != "AuditEvent"
                and access.permits(principal, rtype, "r")]
    if not readable:
        raise Forbidden("system history needs a read scope on at least one type")
    with _bridge().engine.connect() as conn:
        viewer = access.viewer_for(conn, readable[0], "r")
        open_types = [rtype for rtype in readable if not specs[rtype].in_patient_compartment]
        total, versions = repository.history(conn, None, None, since, viewer.patient_id, count,
                                             offset, types=readable, open_types=open_types)
    return history_bundle("_history", total, [v for v in versions if viewer.sees(v)], count,
                          offset, since)
