"""The /fhir blueprint: metadata, read, vread, history and search, answering FHIR JSON (as
negotiated, negotiate.py) with ETag/Last-Modified, paging links and OperationOutcome errors."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, request

from ..auth import smart
from ..errors import BadRequest, Gone, Issue, MethodNotAllowed, NotFound
from . import access, capability, hooks, intake, parameters, repository, urls
from .elements import Subset, parse_elements
from .match import date_range, restore_plus
from .negotiate import negotiate
from .query import page_args, parse_search
from .repository import StoredResource
from .responses import bundle, fhir, searchset
from .search import run

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
bp.record_once(lambda state: hooks.install(state.app))

#: Parameters every interaction takes (FHIR R4 http.html#parameters); read and vread ignore
#: any other (only search is strict: an ignored filter there would disclose more).
GENERAL = ("_format", "_pretty", "_summary", "_elements")


def _bridge():
    return current_app.extensions["fhir_bridge"]


def base_url() -> str:
    """The FHIR base URL for this request (urls.fhir_base: public_base_url, or the request)."""
    return urls.fhir_base(_bridge().config)


def _parameters(name: str) -> list[str]:
    values = request.args.getlist(name)
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        values += request.form.getlist(name)
    return values


@bp.before_request
def _negotiate():
    g.fhir_answer = negotiate(request.headers.get("Accept"), _parameters("_format"),
                              _parameters("_pretty"))


def _unknown_operation(name: str, where: str) -> NotFound:
    return NotFound(f"{name} is not an operation of this server",
                    [Issue("(operation)", f"{where}: no operation {name}; the "
                           "CapabilityStatement at /fhir/metadata lists what is served",
                           "not-supported")])


def _resource_type(resource_type: str) -> str:
    if resource_type.startswith("$"):
        raise _unknown_operation(resource_type, "system level")
    if resource_type == "_history":
        raise NotFound("_history is not a resource type",
                       [Issue("(type)", "history is GET /fhir/_history, /fhir/{type}/_history "
                              "or /fhir/{type}/{id}/_history", "not-supported")])
    if parameters.for_type(resource_type) is None:
        raise NotFound(f"{resource_type} is not served here",
                       [Issue("(type)", f"unknown or unsupported resource type {resource_type}",
                              "not-supported")])
    return resource_type


# -- metadata ----------------------------------------------------------------------------------

@bp.get("/metadata")
def metadata():
    extra = current_app.extensions.get("fhir_capability_resources", [])
    cors = bool(current_app.extensions.get(hooks.EXTENSION))
    return fhir(capability.statement(
        base_url(), extra, cors=cors, oauth=smart.oauth_uris(),
        writes=intake.write_support(_bridge().mapper),
        operations=current_app.extensions.get(capability.OPERATIONS, []),
        instantiates=current_app.extensions.get(capability.INSTANTIATES, [])))


# -- read and vread ----------------------------------------------------------------------------

def _http_date(value: dt.datetime) -> str:
    return format_datetime(value.astimezone(dt.timezone.utc), usegmt=True)


def _not_modified(stored: StoredResource) -> bool:
    tags = request.headers.get("If-None-Match")
    if tags is not None:
        wanted = {tag.strip().removeprefix("W/").strip('"') for tag in tags.split(",")}
        return str(stored.version_id) in wanted or "*" in wanted
    since = request.headers.get("If-Modified-Since")
    if since:
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        return stored.last_updated.replace(microsecond=0) <= when
    return False


def read_subset(rtype: str) -> Subset:
    """``_summary`` (true, text, data, false) and ``_elements`` on a read."""
    issues, summary, named = [], None, []
    for value in request.args.getlist("_summary"):
        if value not in ("true", "text", "data", "false"):
            issues.append(Issue("_summary", "a read takes true, text, data or false"))
        elif value != "false":
            summary = value
    for value in request.args.getlist("_elements"):
        try:
            named += parse_elements(value, rtype, lambda t: parameters.for_type(t) is not None)
        except ValueError as exc:
            issues.append(Issue("_elements", str(exc)))
    if summary and named:
        issues.append(Issue("_elements", "use _summary or _elements, not both"))
    if issues:
        raise BadRequest("the read cannot be answered as asked", issues)
    return Subset(summary, tuple(named))


def _resource_response(stored: StoredResource, subset: Subset) -> Response:
    headers = {"ETag": f'W/"{stored.version_id}"',
               "Last-Modified": _http_date(stored.last_updated)}
    if _not_modified(stored):
        return Response(status=304, headers=headers)
    return fhir(subset.apply(stored.resource()), headers=headers)


@bp.get("/<resource_type>/<resource_id>")
def read(resource_type: str, resource_id: str):
    rtype = _resource_type(resource_type)
    if resource_id.startswith("$"):
        raise _unknown_operation(resource_id, f"type {rtype}")
    subset = read_subset(rtype)
    with _bridge().engine.connect() as conn:
        viewer = access.viewer_for(conn, rtype, "r")
        stored = repository.current(conn, rtype, resource_id)
    if stored is None or not viewer.sees(stored):
        raise NotFound(f"{rtype}/{resource_id} is not known")
    access.note_access([stored])
    if stored.deleted:
        raise Gone(f"{rtype}/{resource_id} was deleted")
    return _resource_response(stored, subset)


@bp.get("/<resource_type>/<resource_id>/_history/<version_id>")
def vread(resource_type: str, resource_id: str, version_id: str):
    rtype = _resource_type(resource_type)
    subset = read_subset(rtype)
    if not (version_id.isascii() and version_id.isdigit()) or len(version_id) > 18:
        raise NotFound(f"{rtype}/{resource_id} has no version {version_id!r}")
    with _bridge().engine.connect() as conn:
        viewer = access.viewer_for(conn, rtype, "r")
        stored = repository.version(conn, rtype, resource_id, int(version_id))
    if stored is None or not viewer.sees(stored):
        raise NotFound(f"{rtype}/{resource_id} has no version {version_id}")
    access.note_access([stored])
    if stored.deleted:
        raise Gone(f"{rtype}/{resource_id} version {version_id} is a deletion")
    return _resource_response(stored, subset)


# -- history -----------------------------------------------------------------------------------

def _history_args() -> tuple[int, int, dt.datetime | None]:
    count, offset, issues = page_args(request.args.get("_count"), request.args.get("_offset"))
    since_text = request.args.get("_since")
    for name in request.args:
        if name not in ("_count", "_offset", "_since", "_format", "_pretty"):
            issues.append(Issue(name, "history takes _count, _since and _offset only",
                                "not-supported"))
    since = since_arg(since_text, issues)
    if issues:
        raise BadRequest("the history request cannot be run as written", issues)
    return count, offset, since


def since_arg(text: str | None, issues: list[Issue]) -> dt.datetime | None:
    """``_since``: an instant (a raw ``+`` in its offset read back), or an issue."""
    if text is None:
        return None
    text = restore_plus(text)
    bounds = date_range(text)
    if bounds is None or "T" not in text:
        issues.append(Issue("_since", "must be an instant with a timezone"))
        return None
    return bounds[0]


def _history(rtype: str, resource_id: str | None):
    count, offset, since = _history_args()
    with _bridge().engine.connect() as conn:
        viewer = access.viewer_for(conn, rtype, "r")
        if resource_id is not None:
            owner = repository.current(conn, rtype, resource_id)
            if owner is None or not viewer.sees(owner):
                raise NotFound(f"{rtype}/{resource_id} is not known")
        total, versions = repository.history(conn, rtype, resource_id, since,
                                             viewer.patient_id, count, offset)
    path = f"{rtype}/{resource_id}/_history" if resource_id else f"{rtype}/_history"
    return history_bundle(path, total, [v for v in versions if viewer.sees(v)], count, offset,
                          since)


def history_bundle(path: str, total: int, versions: list[StoredResource], count: int,
                   offset: int, since: dt.datetime | None) -> Response:
    """A history Bundle of these versions (instance, type and system history)."""
    access.note_access(versions)
    base = base_url()
    entries = []
    for v in versions:
        url = f"{base}/{v.resource_type}/{v.id}"
        entry: dict = {"fullUrl": url}
        if v.deleted:
            entry["request"] = {"method": "DELETE", "url": f"{v.resource_type}/{v.id}"}
        else:
            entry["resource"] = v.resource()
            entry["request"] = {"method": "POST" if v.version_id == 1 else "PUT",
                                "url": f"{v.resource_type}/{v.id}" if v.version_id > 1
                                else v.resource_type}
        entry["response"] = {"status": "200 OK" if not v.deleted else "204 No Content",
                             "etag": f'W/"{v.version_id}"',
                             "lastModified": v.last_updated.isoformat(timespec="milliseconds")}
        entries.append(entry)
    extra = [("_since", restore_plus(request.args["_since"]))] if since else []
    return fhir(bundle("history", total, entries, f"{base}/{path}", extra, count, offset))


@bp.get("/<resource_type>/<resource_id>/_history")
def instance_history(resource_type: str, resource_id: str):
    return _history(_resource_type(resource_type), resource_id)


@bp.get("/<resource_type>/_history")
def type_history(resource_type: str):
    return _history(_resource_type(resource_type), None)


# -- search ------------------------------------------------------------------------------------

def _search(rtype: str, args: list[tuple[str, str]], in_patient: str | None = None):
    """Type search, or (``in_patient``: a Patient id) search in that Patient's compartment."""
    search = parse_search(rtype, args)
    search.compartment = in_patient
    with _bridge().engine.connect() as conn:
        viewer = access.viewer_for(conn, rtype, "s")
        result = run(conn, search, viewer)
    access.note_access(result.matches + result.included, urlencode(search.canonical))
    path = f"Patient/{in_patient}/{rtype}" if in_patient is not None else rtype
    return fhir(searchset(base_url(), path, search, result))


@bp.get("/<resource_type>")
def search_type(resource_type: str):
    return _search(_resource_type(resource_type), list(request.args.items(multi=True)))


@bp.route("/<resource_type>/_search", methods=["GET", "POST"])
def search_post(resource_type: str):
    """``GET [type]/_search?...`` and ``POST [type]/_search`` with a form body (the query
    string and the form together)."""
    return _search(_resource_type(resource_type), search_args())


def search_args() -> list[tuple[str, str]]:
    """The parameters of a ``_search`` request: the query string, and a POST's form."""
    args = list(request.args.items(multi=True))
    if request.method == "POST":
        if request.mimetype != "application/x-www-form-urlencoded":
            raise BadRequest("_search takes application/x-www-form-urlencoded parameters")
        args += list(request.form.items(multi=True))
    return args


from . import compartment, system  # noqa: E402,F401  (their routes: system search and history,
#                                     Patient/{id}/{type}, Patient/{id}/$everything)


# -- what /fhir does not do --------------------------------------------------------------------

@bp.route("/<resource_type>/<resource_id>/<operation>", methods=["GET", "POST"])
def unknown_operation(resource_type: str, resource_id: str, operation: str):
    rtype = _resource_type(resource_type)
    if operation.startswith("$"):
        raise _unknown_operation(operation, f"instance {rtype}/{resource_id}")
    raise NotFound(f"/fhir/{rtype}/{resource_id}/{operation} is not a FHIR endpoint here")


@bp.route("/<resource_type>", methods=["PATCH"])
@bp.route("/<resource_type>/<resource_id>", methods=["POST", "PATCH"])
def not_writable(resource_type: str, resource_id: str | None = None):
    """Writes are in writes.py and patch.py (PATCH [type]/[id]); PATCH of a type, and POST
    to an instance, are not served."""
    if resource_type.startswith("$") or (resource_id or "").startswith("$"):
        _resource_type(resource_type)
        raise _unknown_operation(resource_id or resource_type, "this server")
    raise MethodNotAllowed("PATCH takes one resource (PATCH [type]/[id]); POST to an instance "
                           "is not served (see the CapabilityStatement at /fhir/metadata)")
