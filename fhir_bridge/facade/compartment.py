"""The Patient compartment: ``Patient/{id}/{type}?...`` (a type search limited to the
patient's resources, by the same engine as every search) and ``Patient/{id}/$everything``
(the patient and every resource of theirs, with ``_since``, ``_type`` and paging).

Both first read the Patient as the caller: a Patient the token may not read, or cannot see
(another patient's, for a patient token), is 404 or 403 before anything else is looked at."""

from __future__ import annotations

from flask import request

from ..auth.principal import current_principal
from ..errors import BadRequest, Forbidden, Issue, NotFound
from . import access, parameters, repository
from .query import page_args
from .responses import bundle, fhir
from .search import Include, reference_targets
from .views import (_bridge, _history, _resource_type, _search, _unknown_operation,
                    base_url, bp, since_arg)

EVERYTHING_PARAMS = ("_since", "_type", "_count", "_offset", "_format", "_pretty")


def _patient(conn, patient_id: str) -> repository.StoredResource:
    viewer = access.viewer_for(conn, "Patient", "r")
    stored = repository.current(conn, "Patient", patient_id)
    if stored is None or stored.deleted or not viewer.sees(stored):
        raise NotFound(f"Patient/{patient_id} is not known")
    return stored


def _compartment_type(rtype: str) -> str:
    spec = parameters.for_type(rtype)
    if rtype == "AuditEvent" or not spec.in_patient_compartment or rtype == "Patient":
        raise NotFound(f"{rtype} is not searched in the Patient compartment here", [Issue(
            "(type)", f"search {rtype} at /fhir/{rtype}", "not-supported")])
    return rtype


@bp.get("/Patient/<patient_id>/<resource_type>")
def compartment_search(patient_id: str, resource_type: str):
    if resource_type == "_history":
        return _history("Patient", patient_id)
    if resource_type.startswith("$"):
        raise _unknown_operation(resource_type, f"instance Patient/{patient_id}")
    rtype = _compartment_type(_resource_type(resource_type))
    with _bridge().engine.connect() as conn:
        _patient(conn, patient_id)
    return _search(rtype, list(request.args.items(multi=True)), in_patient=patient_id)


def _everything_types(principal) -> tuple[list[str], list[Issue]]:
    """The types asked for (``_type``) or, by default, every compartment type the token
    reads; a named type the token does not read is refused."""
    specs = parameters.load()
    served = [t for t in specs if specs[t].in_patient_compartment and t != "AuditEvent"]
    named, issues = [], []
    for value in request.args.getlist("_type"):
        for rtype in value.split(","):
            if rtype not in served:
                issues.append(Issue("_type", f"{rtype!r} is not a Patient compartment type "
                                    f"served here ({', '.join(sorted(served))})",
                                    "not-supported"))
            elif not access.permits(principal, rtype, "r"):
                raise Forbidden(f"$everything with _type={rtype} needs a scope that reads it")
            elif rtype not in named:
                named.append(rtype)
    if not request.args.getlist("_type"):
        named = [t for t in served if access.permits(principal, t, "r")]
    return named, issues


@bp.get("/Patient/<patient_id>/$everything")
def everything(patient_id: str):
    issues = [Issue(name, "$everything takes _since, _type, _count and _offset",
                    "not-supported") for name in request.args if name not in EVERYTHING_PARAMS]
    count, offset, page_issues = page_args(request.args.get("_count"),
                                           request.args.get("_offset"))
    since = since_arg(request.args.get("_since"), issues)
    principal = current_principal()
    types, type_issues = _everything_types(principal)
    issues += page_issues + type_issues
    if issues:
        raise BadRequest("$everything cannot be run as written", issues)
    with _bridge().engine.connect() as conn:
        patient = _patient(conn, patient_id)
        total, page = repository.compartment_page(conn, patient.patient_id, types, since,
                                                  count, offset)
        viewer = access.viewer_for(conn, "Patient", "r")
        page = [s for s in page if viewer.sees(s)]
        included = _referenced(conn, page, viewer)
    access.note_access(page + included)
    base = base_url()
    entries = [{"fullUrl": f"{base}/{s.resource_type}/{s.id}", "resource": s.resource(),
                "search": {"mode": "match"}} for s in page]
    entries += [{"fullUrl": f"{base}/{s.resource_type}/{s.id}", "resource": s.resource(),
                 "search": {"mode": "include"}} for s in included]
    args = [(k, v) for k, v in request.args.items(multi=True) if k in ("_since", "_type")]
    return fhir(bundle("searchset", total, entries, f"{base}/Patient/{patient_id}/$everything",
                       args, count, offset))


def _referenced(conn, page: list[repository.StoredResource],
                viewer) -> list[repository.StoredResource]:
    """What the page's resources point at outside any patient's compartment (their
    practitioners), as $everything returns the resources a patient's record refers to."""
    specs = parameters.load()
    wanted: set[tuple[str, str]] = set()
    for stored in page:
        resource = stored.resource()
        for param in specs[stored.resource_type].reference_params().values():
            pointed = reference_targets(resource, Include(stored.resource_type, param, None))
            wanted |= {key for key in pointed
                       if key[0] in specs and not specs[key[0]].in_patient_compartment}
    return sorted((s for s in repository.by_keys(conn, wanted) if viewer.sees(s)),
                  key=lambda s: s.key)
