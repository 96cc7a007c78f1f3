"""/fhir/StructureDefinition, /fhir/CodeSystem and /fhir/ValueSet: the bridge's own conformance
resources (fhir_bridge/conformance), read-only: read by id, searched by the /fhir engine
(catalog.py; parameters in mappings/search-parameters.yaml, ``catalog``). They are definitions,
not patient data: any authenticated client may read them."""

from __future__ import annotations

from flask import Blueprint, current_app, g, request

from ..conformance.resources import TYPES, capability_entries, conformance_resources
from ..errors import Issue, MethodNotAllowed
from . import catalog
from .negotiate import negotiate

bp = Blueprint("fhir_conformance", __name__, url_prefix="/fhir")


def install(app) -> None:
    """Register the routes and the types' sources, and announce them in the
    CapabilityStatement."""
    app.register_blueprint(bp)
    for rtype in TYPES:
        catalog.register(app, rtype, lambda _t=rtype: _resources(_t))
    app.extensions.setdefault("fhir_capability_resources", []).extend(capability_entries())


@bp.before_request
def _negotiate():
    g.fhir_answer = negotiate(request.headers.get("Accept"), request.args.getlist("_format"),
                              request.args.getlist("_pretty"))


def _resources(rtype: str) -> list[dict]:
    base = current_app.extensions["fhir_bridge"].config.get("local_code_system_base") \
        or "urn:fhir-bridge:codesystem"
    return [r for r in conformance_resources(base) if r["resourceType"] == rtype]


for _type in TYPES:
    bp.add_url_rule(f"/{_type}/<resource_id>", f"read_{_type}",
                    lambda resource_id, _t=_type: catalog.read_response(_t, resource_id))


WRITES = ["POST", "PUT", "PATCH", "DELETE"]


def not_writable(resource_id: str | None = None):
    rtype = request.path.split("/")[2]
    raise MethodNotAllowed(f"{rtype} is read-only here",
                           [Issue("(method)", f"the bridge's {rtype} resources are read-only: "
                                  "they are built from its mapping files", "not-supported")])


for _type in TYPES:
    for _path in (f"/{_type}", f"/{_type}/<resource_id>"):
        bp.add_url_rule(_path, "not_writable", not_writable, methods=WRITES)
