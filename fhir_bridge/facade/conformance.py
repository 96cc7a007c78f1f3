"""/fhir/StructureDefinition, /fhir/CodeSystem and /fhir/ValueSet: the bridge's own conformance
resources (fhir_bridge/conformance), read-only: read by id, search by url, name and _id. They
are definitions, not patient data: any authenticated client may read them."""

from __future__ import annotations

from flask import Blueprint, current_app, g, request

from ..conformance.resources import (SEARCH_PARAMS, TYPES, capability_entries,
                                     conformance_resources)
from ..errors import BadRequest, Issue, MethodNotAllowed, NotFound
from .negotiate import negotiate
from .query import page_args
from .responses import bundle, fhir
from .urls import fhir_base

GENERAL = ("_format", "_pretty", "_count", "_offset")
SEARCH = tuple(SEARCH_PARAMS)

bp = Blueprint("fhir_conformance", __name__, url_prefix="/fhir")


def install(app) -> None:
    """Register the routes and announce them in the CapabilityStatement."""
    app.register_blueprint(bp)
    app.extensions.setdefault("fhir_capability_resources", []).extend(capability_entries())


@bp.before_request
def _negotiate():
    g.fhir_answer = negotiate(request.headers.get("Accept"), request.args.getlist("_format"),
                              request.args.getlist("_pretty"))


def _resources(rtype: str) -> list[dict]:
    base = current_app.extensions["fhir_bridge"].config.get("local_code_system_base") \
        or "urn:fhir-bridge:codesystem"
    return [r for r in conformance_resources(base) if r["resourceType"] == rtype]


def _matches(resource: dict, name: str, values: list[str]) -> bool:
    """One search parameter (its comma-separated values are alternatives)."""
    if name == "url":
        return resource.get("url") in values
    if name == "_id":
        return resource["id"] in values
    return any(resource.get("name", "").lower().startswith(v.lower()) for v in values)


def _search(rtype: str):
    issues, criteria = [], []
    for key, value in request.args.items(multi=True):
        if key in GENERAL:
            continue
        if key not in SEARCH:
            issues.append(Issue(key, f"{rtype} is searched by {', '.join(SEARCH)}",
                                "not-supported"))
        elif not value:
            issues.append(Issue(key, "needs a value"))
        else:
            criteria.append((key, value))
    count, offset, paging = page_args(request.args.get("_count"), request.args.get("_offset"))
    if issues or paging:
        raise BadRequest(f"the {rtype} search cannot be answered as asked", issues + paging)
    found = [r for r in _resources(rtype)
             if all(_matches(r, key, value.split(",")) for key, value in criteria)]
    base = fhir_base(current_app.extensions["fhir_bridge"].config)
    entries = [{"fullUrl": f"{base}/{rtype}/{r['id']}", "resource": r,
                "search": {"mode": "match"}} for r in found[offset:offset + count]]
    return fhir(bundle("searchset", len(found), entries, f"{base}/{rtype}", criteria, count,
                       offset))


def _read(rtype: str, resource_id: str):
    found = next((r for r in _resources(rtype) if r["id"] == resource_id), None)
    if found is None:
        raise NotFound(f"{rtype}/{resource_id} is not known",
                       [Issue("id", f"no {rtype} with id {resource_id}", "not-found")])
    return fhir(found)


for _type in TYPES:
    bp.add_url_rule(f"/{_type}", f"search_{_type}", lambda _t=_type: _search(_t))
    bp.add_url_rule(f"/{_type}/<resource_id>", f"read_{_type}",
                    lambda resource_id, _t=_type: _read(_t, resource_id))


WRITES = ["POST", "PUT", "PATCH", "DELETE"]


def not_writable(resource_id: str | None = None):
    rtype = request.path.split("/")[2]
    raise MethodNotAllowed(f"{rtype} is read-only here",
                           [Issue("(method)", f"the bridge's {rtype} resources are read-only: "
                                  "they are built from its mapping files", "not-supported")])


for _type in TYPES:
    for _path in (f"/{_type}", f"/{_type}/<resource_id>"):
        bp.add_url_rule(_path, "not_writable", not_writable, methods=WRITES)
