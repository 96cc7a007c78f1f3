"""The /fhir blueprint: metadata, read, vread, history and search, answering
application/fhir+json with ETag/Last-Modified, paging links and OperationOutcome errors."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, request

from ..errors import BadRequest, Gone, Issue, MethodNotAllowed, NotAcceptable, NotFound
from ..fhir import jsonio
from . import access, capability, parameters, repository
from .match import date_range
from .query import DEFAULT_COUNT, MAX_COUNT, MAX_OFFSET, parse_search
from .repository import StoredResource
from .search import run

bp = Blueprint("fhir", __name__, url_prefix="/fhir")

FHIR_JSON = "application/fhir+json"


def _bridge():
    return current_app.extensions["fhir_bridge"]


def base_url() -> str:
    configured = _bridge().config.get("fhir_base_url")
    return (configured or request.host_url.rstrip("/") + "/fhir").rstrip("/")


def _fhir(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(jsonio.dumpb(body), status=status, headers=headers or {},
                    content_type=f"{FHIR_JSON}; charset=utf-8")


@bp.before_request
def _negotiate():
    fmt = request.args.get("_format")
    if fmt is not None:
        return  # checked by the search parser / below
    accept = request.accept_mimetypes
    if request.headers.get("Accept") and not accept.best_match(
            [FHIR_JSON, "application/json", "application/json+fhir"]):
        raise NotAcceptable("this server answers application/fhir+json only")


def _check_format() -> None:
    fmt = request.args.get("_format")
    if fmt is not None and fmt not in ("json", "application/json", FHIR_JSON,
                                       "application/json+fhir"):
        raise NotAcceptable("this server answers application/fhir+json only",
                            [Issue("_format", "only json is supported", "not-supported")])


def _resource_type(resource_type: str) -> str:
    if parameters.for_type(resource_type) is None:
        raise NotFound(f"{resource_type} is not served here",
                       [Issue("(type)", f"unknown or unsupported resource type {resource_type}",
                              "not-supported")])
    return resource_type


# -- metadata ----------------------------------------------------------------------------------

@bp.get("/metadata")
def metadata():
    _check_format()
    extra = current_app.extensions.get("fhir_capability_resources", [])
    return _fhir(capability.statement(base_url(), extra))


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


def _resource_response(stored: StoredResource) -> Response:
    headers = {"ETag": f'W/"{stored.version_id}"',
               "Last-Modified": _http_date(stored.last_updated)}
    if _not_modified(stored):
        return Response(status=304, headers=headers)
    return _fhir(stored.resource(), headers=headers)


@bp.get("/<resource_type>/<resource_id>")
def read(resource_type: str, resource_id: str):
    _check_format()
    rtype = _resource_type(resource_type)
    with _bridge().engine.connect() as conn:
        viewer = access.viewer_for(conn, rtype, "r")
        stored = repository.current(conn, rtype, resource_id)
    if stored is None or not viewer.sees(stored):
        raise NotFound(f"{rtype}/{resource_id} is not known")
    access.note_access([stored])
    if stored.deleted:
        raise Gone(f"{rtype}/{resource_id} was deleted")
    return _resource_response(stored)


@bp.get("/<resource_type>/<resource_id>/_history/<version_id>")
def vread(resource_type: str, resource_id: str, version_id: str):
    _check_format()
    rtype = _resource_type(resource_type)
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
    return _resource_response(stored)


# -- history -----------------------------------------------------------------------------------

def _history_args() -> tuple[int, int, dt.datetime | None]:
    issues = []
    count = request.args.get("_count", str(DEFAULT_COUNT))
    offset = request.args.get("_offset", "0")
    since_text = request.args.get("_since")
    for name in request.args:
        if name not in ("_count", "_offset", "_since", "_format"):
            issues.append(Issue(name, "history takes _count, _since and _offset only",
                                "not-supported"))
    if not (count.isascii() and count.isdigit()) or not 0 <= int(count) <= MAX_COUNT:
        issues.append(Issue("_count", f"must be a whole number from 0 to {MAX_COUNT}"))
    if not (offset.isascii() and offset.isdigit()) or int(offset) > MAX_OFFSET:
        issues.append(Issue("_offset", f"must be a whole number from 0 to {MAX_OFFSET}"))
    since = None
    if since_text is not None:
        bounds = date_range(since_text)
        if bounds is None or "T" not in since_text:
            issues.append(Issue("_since", "must be an instant with a timezone"))
        else:
            since = bounds[0]
    if issues:
        raise BadRequest("the history request cannot be run as written", issues)
    return int(count), int(offset), since


def _history(rtype: str, resource_id: str | None):
    _check_format()
    count, offset, since = _history_args()
    with _bridge().engine.connect() as conn:
        viewer = access.viewer_for(conn, rtype, "r")
        if resource_id is not None:
            owner = repository.current(conn, rtype, resource_id)
            if owner is None or not viewer.sees(owner):
                raise NotFound(f"{rtype}/{resource_id} is not known")
        total, versions = repository.history(conn, rtype, resource_id, since,
                                             viewer.patient_id, count, offset)
    versions = [v for v in versions if viewer.sees(v)]
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
    path = f"{rtype}/{resource_id}/_history" if resource_id else f"{rtype}/_history"
    extra = [("_since", request.args["_since"])] if since else []
    return _fhir(_bundle("history", total, entries, f"{base}/{path}", extra, count, offset))


@bp.get("/<resource_type>/<resource_id>/_history")
def instance_history(resource_type: str, resource_id: str):
    return _history(_resource_type(resource_type), resource_id)


@bp.get("/<resource_type>/_history")
def type_history(resource_type: str):
    return _history(_resource_type(resource_type), None)


# -- search ------------------------------------------------------------------------------------

def _search(rtype: str, args: list[tuple[str, str]]):
    search = parse_search(rtype, args)
    with _bridge().engine.connect() as conn:
        viewer = access.viewer_for(conn, rtype, "s")
        result = run(conn, search, viewer)
    access.note_access(result.matches + result.included, urlencode(search.canonical))
    base = base_url()
    if search.summary_count:
        return _fhir({"resourceType": "Bundle", "type": "searchset", "total": result.total})
    entries = [{"fullUrl": f"{base}/{s.resource_type}/{s.id}", "resource": s.resource(),
                "search": {"mode": "match"}} for s in result.matches]
    entries += [{"fullUrl": f"{base}/{s.resource_type}/{s.id}", "resource": s.resource(),
                 "search": {"mode": "include"}} for s in result.included]
    return _fhir(_bundle("searchset", result.total, entries, f"{base}/{rtype}",
                         search.canonical, search.count, search.offset))


@bp.get("/<resource_type>")
def search_type(resource_type: str):
    return _search(_resource_type(resource_type), list(request.args.items(multi=True)))


@bp.post("/<resource_type>/_search")
def search_post(resource_type: str):
    rtype = _resource_type(resource_type)
    if request.mimetype != "application/x-www-form-urlencoded":
        raise BadRequest("_search takes application/x-www-form-urlencoded parameters")
    args = list(request.args.items(multi=True)) + list(request.form.items(multi=True))
    return _search(rtype, args)


def _bundle(kind: str, total: int, entries: list[dict], url: str, args: list[tuple[str, str]],
            count: int, offset: int) -> dict:
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
    return {"resourceType": "Bundle", "type": kind, "total": total, "link": links,
            "entry": entries}


# -- what /fhir does not do --------------------------------------------------------------------

@bp.route("/<resource_type>", methods=["POST", "PUT", "PATCH", "DELETE"])
@bp.route("/<resource_type>/<resource_id>", methods=["POST", "PUT", "PATCH", "DELETE"])
def not_writable(resource_type: str, resource_id: str | None = None):
    raise MethodNotAllowed("the FHIR API is read-only: write through /api/v1 (see the "
                           "CapabilityStatement at /fhir/metadata)")
