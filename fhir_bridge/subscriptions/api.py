"""The Subscription endpoints at /fhir: create, read, update, delete, list, ``$status`` and
``$events``. Registered beside the /fhir read/search blueprint; Flask prefers these literal
``/fhir/Subscription`` rules over its generic ``/fhir/<type>/<id>``.

Access: ``current_principal().require("Subscription", c|r|u|d|s)``; a subscription belongs to
the client that created it (the token's issuer, subject and client id claim): no other client
can read, list, change or delete it, nor ask its ``$status`` or ``$events`` (404, as if it did
not exist). Subscriptions made before ownership was recorded (migration 0006) are seen by
system tokens only. A patient-context token subscribes only to its own patient (its filters
must name it) and sees only those subscriptions.

``channel.header`` is write-only: stored and sent to the endpoint, never returned. An update
that leaves it out keeps the stored headers while the endpoint stays the same; with a new
endpoint, headers are only those the update states (a secret never follows a new endpoint).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, request

from ..api.body import json_body
from ..auth import current_principal
from ..errors import BadRequest, Forbidden, Issue, NotFound
from ..facade.catalog import read_answer
from ..facade.query import parse_criteria
from ..facade.urls import fhir_base
from ..fhir import jsonio
from ..fhir.validate import validate_resource
from ..store.records import utcnow
from . import repository
from .notify import notification_bundle, status_bundle, statuses_bundle
from .repository import StoredSubscription, client_key
from .resource import (CONTENTS, STATUSES, SubscriptionSpec, limited_to, parse_subscription,
                       payload_content)
from .topics import load_topics
from .worker import settings_of

bp = Blueprint("subscriptions", __name__, url_prefix="/fhir/Subscription")

FHIR_JSON = "application/fhir+json"
MAX_EVENTS = 1000
MAX_LIST = 500


def _principal():
    return current_principal()


def _patient_context(principal) -> str | None:
    return principal.patient_id if getattr(principal, "context", None) == "patient" else None


def _bridge():
    return current_app.extensions["fhir_bridge"]


def _settings() -> dict:
    return settings_of(_bridge().config)


def _base() -> str:
    return fhir_base(_bridge().config)


def _fhir(body: dict | None, status: int = 200, headers: dict | None = None) -> Response:
    data = jsonio.dumpb(body) if body is not None else b""
    return Response(data, status=status, headers=headers or {},
                    content_type=f"{FHIR_JSON}; charset=utf-8")


def _headers(sub: StoredSubscription) -> dict:
    return {"ETag": f'W/"{sub.version_id}"',
            "Last-Modified": sub.last_updated.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            "Location": f"{_base()}/Subscription/{sub.id}/_history/{sub.version_id}"}


def _owner(principal) -> str:
    return client_key(principal.issuer, principal.subject,
                      getattr(principal, "client_id", None))


def _sees_unowned(principal) -> bool:
    """Subscriptions without a recorded owner (made before migration 0006): system only."""
    return getattr(principal, "context", None) == "system"


def _visible(sub_id: str, principal) -> StoredSubscription:
    sub = repository.get(_bridge().engine, sub_id)
    patient = _patient_context(principal)
    owned = (sub.owner_client == _owner(principal) if sub.owner_client is not None
             else _sees_unowned(principal))
    if not owned or (patient is not None and sub.patient_ref != patient):
        raise NotFound(f"no Subscription {sub_id!r}")
    _touched([f"Subscription/{sub.id}"], [])
    return sub


def _touched(entities: list[str], patients: list[str]) -> None:
    """Tell the request audit hook what this request touched."""
    audit = g.setdefault("audit_touched", {"entities": [], "patients": set(), "query": None})
    audit["entities"].extend(entities)
    audit["patients"].update(p for p in patients if p)


def _accept(principal, body) -> SubscriptionSpec:
    spec = parse_subscription(body, _settings())
    # Notifications disclose changes of the focus type: subscribing needs read access to it.
    principal.require(spec.topic.resource if spec.topic else spec.searches()[0].resource_type,
                      "r")
    patient = _patient_context(principal)
    if patient is not None and not limited_to(spec, patient):
        raise Forbidden(f"this token may subscribe to Patient/{patient} only",
                        [Issue("Subscription.criteria",
                               f"name patient=Patient/{patient} in every filter", "forbidden")])
    return spec


def _keeping_headers(body: dict, stored: StoredSubscription) -> dict:
    """The update with the stored ``channel.header`` when it leaves the headers out (they are
    never served, so a client cannot send them back) and keeps the endpoint."""
    channel, old = body.get("channel"), stored.content.get("channel") or {}
    if (not isinstance(channel, dict) or "header" in channel or "header" not in old
            or channel.get("endpoint") != old.get("endpoint")):
        return body
    return {**body, "channel": {**channel, "header": old["header"]}}


def _served(sub: StoredSubscription) -> dict:
    resource = sub.as_fhir()
    validate_resource(resource)
    return resource


@bp.post("")
def create():
    principal = _principal()
    principal.require("Subscription", "c")
    spec = _accept(principal, json_body())
    sub = repository.create(_bridge().engine, spec, getattr(principal, "subject", None),
                            _owner(principal))
    _touched([f"Subscription/{sub.id}"], [])
    return _fhir(_served(sub), 201, _headers(sub))


def _own_subscriptions(principal) -> list[StoredSubscription]:
    return repository.listing(_bridge().engine, _patient_context(principal), limit=MAX_LIST,
                              owner_client=_owner(principal),
                              with_unowned=_sees_unowned(principal))


def searchable_subscriptions() -> list[dict]:
    """The caller's own Subscriptions: what a search sees (catalog source). Only the page a
    search answers is validated (:func:`searched`), not every one of up to MAX_LIST."""
    principal = _principal()
    principal.require("Subscription", "s")
    return [s.as_fhir() for s in _own_subscriptions(principal)]


def searched(found: list[dict]) -> None:
    """The page a search answers: each Subscription validated as it goes out, and named in
    the audit."""
    for resource in found:
        validate_resource(resource)
    _touched([f"Subscription/{s['id']}" for s in found], [])


@bp.get("/<sub_id>")
def read(sub_id: str):
    principal = _principal()
    principal.require("Subscription", "r")
    sub = _visible(sub_id, principal)
    return read_answer(_served(sub), _headers(sub))


@bp.put("/<sub_id>")
def update(sub_id: str):
    principal = _principal()
    principal.require("Subscription", "u")
    body = json_body()
    if not isinstance(body, dict) or body.get("id") != sub_id:
        raise BadRequest("the body's id must match the URL",
                         [Issue("Subscription.id", f"must be {sub_id!r}")])
    stored = _visible(sub_id, principal)
    spec = _accept(principal, _keeping_headers(body, stored))
    expected = None
    if_match = request.headers.get("If-Match")
    if if_match:
        try:
            expected = int(if_match.strip().removeprefix("W/").strip('"'))
        except ValueError:
            raise BadRequest("If-Match must be an ETag like W/\"3\"",
                             [Issue("If-Match", "not a version")]) from None
    sub = repository.update(_bridge().engine, sub_id, spec, expected)
    return _fhir(_served(sub), headers=_headers(sub))


@bp.delete("/<sub_id>")
def delete(sub_id: str):
    principal = _principal()
    principal.require("Subscription", "d")
    _visible(sub_id, principal)
    repository.delete(_bridge().engine, sub_id)
    return Response(status=204)


@bp.route("/$status", methods=["GET", "POST"])
def type_status():
    """Type-level ``$status``: the status of each of the caller's subscriptions, or of those
    named by ``id`` (comma-separated or repeated) and with a ``status`` among those given."""
    principal = _principal()
    principal.require("Subscription", "r")
    args = _operation_args(repeated=True)
    unknown = {name for name, _ in args} - {"id", "status", "_format", "_pretty"}
    if unknown:
        raise BadRequest("unknown parameters", [Issue(n, "is not a parameter of $status",
                                                      "not-supported") for n in sorted(unknown)])
    ids = {v for n, value in args if n == "id" for v in value.split(",") if v}
    statuses = {v for n, value in args if n == "status" for v in value.split(",") if v}
    if statuses - set(STATUSES):
        raise BadRequest("unknown status", [Issue("status", f"must be one of "
                                                            f"{', '.join(STATUSES)}")])
    subs = [s for s in _own_subscriptions(principal)
            if (not ids or s.id in ids) and (not statuses or s.status in statuses)]
    _touched([f"Subscription/{s.id}" for s in subs], [])
    return _fhir(statuses_bundle(subs, _base(), utcnow()))


@bp.route("/<sub_id>/$status", methods=["GET", "POST"])
def status(sub_id: str):
    principal = _principal()
    principal.require("Subscription", "r")
    sub = _visible(sub_id, principal)
    return _fhir(status_bundle(sub, _base(), utcnow()))


def _focus_type(sub: StoredSubscription) -> str:
    if sub.topic:
        topic = load_topics().get(sub.topic)
        if topic is not None:
            return topic.resource
    return parse_criteria(sub.filters[0]).resource_type if sub.filters else "Subscription"


def _operation_args(repeated: bool = False):
    """Parameters of an operation: the query string, or a Parameters body on POST; a dict,
    or with ``repeated`` a list of (name, value) keeping every repeat."""
    pairs = list(request.args.items(multi=True))
    if request.method == "POST" and request.get_data(cache=True):
        body = json_body()
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            raise BadRequest("the body must be a Parameters resource",
                             [Issue("resourceType", "must be Parameters")])
        for index, param in enumerate(body.get("parameter") or []):
            value = next((v for k, v in param.items() if k.startswith("value")), None) \
                if isinstance(param, dict) else None
            if value is None or not isinstance(param.get("name"), str):
                raise BadRequest("malformed parameter",
                                 [Issue(f"Parameters.parameter[{index}]",
                                        "needs a name and a value")])
            pairs.append((param["name"], str(value)))
    return pairs if repeated else dict(pairs)


def _number(args: dict[str, str], name: str, default: int) -> int:
    text = args.get(name)
    if text is None or text == "":
        return default
    text = str(text)
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) < 1:
        raise BadRequest(f"{name} must be an event number",
                         [Issue(name, "must be a whole number of at least 1")])
    return int(text)


@bp.route("/<sub_id>/$events", methods=["GET", "POST"])
def events(sub_id: str):
    """Past notifications (R5 Backport $events): eventsSinceNumber, eventsUntilNumber
    (inclusive), content (empty | id-only | full-resource; default the subscription's)."""
    principal = _principal()
    principal.require("Subscription", "r")
    sub = _visible(sub_id, principal)
    principal.require(_focus_type(sub), "r")  # $events can return the resources themselves
    args = _operation_args()
    unknown = set(args) - {"eventsSinceNumber", "eventsUntilNumber", "content", "_format"}
    if unknown:
        raise BadRequest("unknown parameters", [Issue(n, "is not a parameter of $events",
                                                      "not-supported") for n in sorted(unknown)])
    since = _number(args, "eventsSinceNumber", 1)
    until = _number(args, "eventsUntilNumber", max(sub.event_count, 1))
    if until < since:
        raise BadRequest("eventsUntilNumber is below eventsSinceNumber",
                         [Issue("eventsUntilNumber", "must not be below eventsSinceNumber")])
    if until - since + 1 > MAX_EVENTS:
        raise BadRequest(f"at most {MAX_EVENTS} events at a time",
                         [Issue("eventsUntilNumber", f"ask for at most {MAX_EVENTS} events")])
    content = args.get("content") or payload_content(sub.content, sub.kind)
    if content not in CONTENTS:
        raise BadRequest("unknown content", [Issue("content", f"must be one of "
                                                              f"{', '.join(CONTENTS)}")])
    engine = _bridge().engine
    with engine.connect() as conn:
        found = repository.events(conn, sub.id, since, until)
        versions = repository.versions(conn, [r for e in found for r in (e.focus, *e.context)]) \
            if content == "full-resource" else {}
    if content != "empty":
        _touched([r.reference for e in found for r in (e.focus, *e.context)],
                 [e.patient_id for e in found])
    return _fhir(notification_bundle(sub, "query-event", found, content, _base(), utcnow(),
                                     versions))
