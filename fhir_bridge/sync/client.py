"""The one HTTP client fhir-bridge uses to talk to FHIR servers (HAPI and others).

What it guarantees, so the sync code does not have to:
- one ``requests.Session`` per client: pooled keep-alive connections, no urllib3 retries (the
  retry policy lives here, where it can tell retryable from permanent failures);
- failures map onto the project's exception family: unreachable, 429 and 5xx are retried with
  exponential backoff and full jitter (``Retry-After`` honoured) and end as RemoteUnavailable;
  409/412 are RemoteConflict; any other 4xx is RemoteRejected at once; a 2xx that is not the
  JSON asked for is RemoteGarbage. Each error carries the server's OperationOutcome diagnostics,
  never our request body;
- a 401 is retried once after ``auth.invalidate()`` when the auth can fetch a new credential;
- requests stay on the base URL's origin: a next link elsewhere is refused, so our token never
  leaves for another host;
- logs hold method, path (no query string: it can carry identifiers), status and milliseconds,
  never a body (health data).
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any, Callable, Collection, Iterator, Literal, Mapping, Sequence
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from ..errors import RemoteConflict, RemoteGarbage, RemoteRejected, RemoteUnavailable
from ..fhir import jsonio
from .auth import Auth, NoAuth

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
POOL_SIZE = 10
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout,
                     requests.exceptions.ChunkedEncodingError)

#: How to retry: True = every transient failure; False = never; "unsent" = only failures where
#: the server certainly did not act (connection not established, 429). Plain POSTs use "unsent":
#: repeating them after a lost answer would create duplicates.
RetryPolicy = bool | Literal["unsent"]
Params = Mapping[str, Any] | Sequence[tuple[str, Any]] | str | None


@dataclass(frozen=True)
class Response:
    """A successful answer: status, headers (case-insensitive) and the parsed JSON body."""

    status: int
    headers: CaseInsensitiveDict = field(repr=False)
    body: dict[str, Any] | None = field(repr=False)
    location: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def version_id(self) -> str | None:
        """The version from the ETag (``W/"3"`` -> ``"3"``), for a later If-Match."""
        if not self.etag:
            return None
        return self.etag.removeprefix("W/").strip('"') or None


@dataclass(frozen=True)
class ResourceCapabilities:
    """What the server supports for one resource type (CapabilityStatement.rest.resource)."""

    type: str
    interactions: frozenset[str]
    conditional_create: bool
    conditional_update: bool
    conditional_delete: str  # not-supported | single | multiple
    versioning: str  # no-version | versioned | versioned-update
    search_params: frozenset[str]

    @property
    def supports_if_match(self) -> bool:
        """Version-aware updates (If-Match) are honoured only with versioned-update."""
        return self.versioning == "versioned-update"


@dataclass(frozen=True)
class Capabilities:
    """The parts of a CapabilityStatement that decide how we write to a server."""

    fhir_version: str | None
    software_name: str | None
    software_version: str | None
    transaction: bool
    batch: bool
    resources: Mapping[str, ResourceCapabilities]

    def resource(self, resource_type: str) -> ResourceCapabilities | None:
        return self.resources.get(resource_type)

    def supports(self, resource_type: str, interaction: str) -> bool:
        found = self.resources.get(resource_type)
        return found is not None and interaction in found.interactions

    def strategy(self) -> str:
        """"transaction" when the server takes transaction bundles, else "per-resource"."""
        return "transaction" if self.transaction else "per-resource"

    @classmethod
    def from_statement(cls, doc: Mapping[str, Any]) -> "Capabilities":
        """Read a CapabilityStatement; the server-mode rest entry wins, else the first one."""
        rests = [r for r in doc.get("rest") or [] if isinstance(r, dict)]
        rest = next((r for r in rests if r.get("mode") == "server"), rests[0] if rests else {})
        system = _codes(rest.get("interaction"))
        software = doc.get("software") if isinstance(doc.get("software"), dict) else {}
        resources = {}
        for entry in rest.get("resource") or []:
            if isinstance(entry, dict) and isinstance(entry.get("type"), str):
                resources[entry["type"]] = _resource_capabilities(entry)
        return cls(fhir_version=doc.get("fhirVersion"), software_name=software.get("name"),
                   software_version=software.get("version"), transaction="transaction" in system,
                   batch="batch" in system, resources=resources)


def _codes(items: Any) -> frozenset[str]:
    return frozenset(i["code"] for i in items or [] if isinstance(i, dict) and "code" in i)


def _resource_capabilities(entry: Mapping[str, Any]) -> ResourceCapabilities:
    conditional_delete = entry.get("conditionalDelete", "not-supported")
    if isinstance(conditional_delete, bool):  # STU3-era servers sent a boolean
        conditional_delete = "single" if conditional_delete else "not-supported"
    params = frozenset(p["name"] for p in entry.get("searchParam") or []
                       if isinstance(p, dict) and "name" in p)
    return ResourceCapabilities(
        type=entry["type"], interactions=_codes(entry.get("interaction")),
        conditional_create=bool(entry.get("conditionalCreate", False)),
        conditional_update=bool(entry.get("conditionalUpdate", False)),
        conditional_delete=str(conditional_delete),
        versioning=str(entry.get("versioning", "no-version")), search_params=params)


@dataclass
class _Call:
    """One logical request, sent one or more times."""

    method: str
    url: str
    params: Params
    data: bytes | None
    headers: Mapping[str, str]

    @property
    def what(self) -> str:
        """Method and path without the query string: safe for messages and logs."""
        return f"{self.method} {urlsplit(self.url).path or '/'}"


@dataclass
class _Failure:
    """A transient failure of one attempt, kept until we know whether we give up."""

    message: str  # for the error: may hold the server's diagnostics
    summary: str  # for the log: method, path and status or exception type only
    http_status: int | None = None
    retry_after: float | None = None
    body: dict[str, Any] | None = None
    unsent: bool = False  # the server certainly did not act on the request


class FhirClient:
    """A FHIR REST client bound to one server base URL (thread-safe for concurrent requests)."""

    def __init__(self, base_url: str, *, auth: Auth | None = None,
                 timeout: float | tuple[float, float] = (5, 60), max_retries: int = 5,
                 backoff_base: float = 0.5, backoff_max: float = 30,
                 session: requests.Session | None = None, user_agent: str = "fhir-bridge/0.1",
                 verify: bool | str = True, sleep: Callable[[float], None] = time.sleep):
        self.base_url = _check_base(base_url)
        self.auth = auth if auth is not None else NoAuth()
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.user_agent = user_agent
        self.verify = verify
        self._origin = _origin(self.base_url)
        self._own_session = session is None
        self._session = session if session is not None else _pooled_session()
        self._sleep = sleep
        self._random = random.Random()
        self._capabilities: Capabilities | None = None

    @property
    def session(self) -> requests.Session:
        return self._session

    def close(self) -> None:
        """Close the pooled connections (only those of a session this client created)."""
        if self._own_session:
            self._session.close()

    def __enter__(self) -> "FhirClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FhirClient({self.base_url!r}, auth={self.auth!r})"

    # -- the one request path ----------------------------------------------------------------

    def request(self, method: str, path_or_url: str, *, params: Params = None,
                json: Any = None, headers: Mapping[str, str] | None = None,
                retry: RetryPolicy = True, expect_body: bool | None = None,
                retry_statuses: Collection[int] = ()) -> Response:
        """Send one request (retrying transient failures) and return the parsed answer.

        ``path_or_url`` is relative to the base URL (``Patient/1``, ``Patient?x=y``, ``?page``)
        or an absolute URL on the base's origin. ``expect_body`` (default: GET only) makes an
        empty or non-JSON 2xx body a RemoteGarbage; otherwise such a body is ignored, because
        the write it answers has happened and must not look retryable. ``retry_statuses``
        names 4xx answers to treat as transient for this one request (a 409 to a DELETE on a
        server still settling): retried with the same backoff, RemoteUnavailable in the end.
        """
        method = method.upper()
        data = None if json is None else jsonio.dumpb(json)
        call = _Call(method, self.resolve(path_or_url), params, data, dict(headers or {}))
        raw = self._send(call, retry, frozenset(retry_statuses))
        return self._answer(call, raw, method == "GET" if expect_body is None else expect_body)

    def resolve(self, path_or_url: str) -> str:
        """An absolute URL for a path relative to the base, refusing other origins.

        Relative references follow the FHIR convention (relative to the service base, not to
        its parent): ``Patient?x`` -> ``<base>/Patient?x``, ``?x`` -> ``<base>?x``, and
        ``/fhir/Patient`` is taken from the origin's root.
        """
        if not path_or_url:
            url = self.base_url
        elif path_or_url.startswith("?"):
            url = self.base_url + path_or_url
        else:
            url = urljoin(self.base_url + "/", path_or_url)
        try:
            same = _origin(url) == self._origin
        except ValueError:
            same = False
        if not same:
            parts = urlsplit(url)
            raise RemoteRejected(f"refusing {parts.scheme}://{parts.netloc}{parts.path}: not on "
                                 f"the origin of {self.base_url}")
        return url

    def _send(self, call: _Call, retry: RetryPolicy,
              retry_statuses: frozenset[int] = frozenset()) -> requests.Response:
        """Attempt until success, a permanent answer, or the retry budget is spent."""
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            outcome = self._attempt(call)
            if isinstance(outcome, requests.Response):
                if outcome.status_code == 401 and self.auth.refreshable and not refreshed:
                    log.info("%s: 401, refreshing credentials and retrying once", call.what)
                    refreshed = True
                    self.auth.invalidate()
                    attempt -= 1  # a refused credential is not a server fault
                    continue
                failure = _transient(call, outcome, retry_statuses)
                if failure is None:
                    return outcome
            else:
                failure = outcome
            if not self._may_retry(failure, retry, attempt):
                noun = "attempt" if attempt == 1 else "attempts"
                raise RemoteUnavailable(f"{failure.message} (gave up after {attempt} {noun})",
                                        http_status=failure.http_status,
                                        retry_after=failure.retry_after, body=failure.body)
            delay = self._delay(attempt, failure.retry_after)
            log.info("%s; retry %d of %d in %.2f s", failure.summary, attempt, self.max_retries,
                     delay)
            self._sleep(delay)

    def _attempt(self, call: _Call) -> requests.Response | _Failure:
        """Send once; a transport failure (or an unreachable token endpoint) is a _Failure."""
        try:
            headers = self._headers(call)
        except RemoteUnavailable as exc:
            return _Failure(exc.message, exc.message, exc.http_status, exc.retry_after,
                            unsent=True)
        started = time.perf_counter()
        try:
            raw = self._session.request(call.method, call.url, params=call.params,
                                        data=call.data, headers=headers, timeout=self.timeout,
                                        verify=self.verify, allow_redirects=False)
        except _TRANSPORT_ERRORS as exc:
            log.debug("%s failed: %s after %.1f ms", call.what, type(exc).__name__,
                      _ms(started))
            summary = f"{call.what}: {type(exc).__name__}"
            return _Failure(summary, summary, unsent=_never_sent(exc))
        log.debug("%s -> %d in %.1f ms", call.what, raw.status_code, _ms(started))
        return raw

    def _headers(self, call: _Call) -> dict[str, str]:
        headers = {"Accept": FHIR_JSON, "User-Agent": self.user_agent}
        if call.data is not None:
            headers["Content-Type"] = FHIR_JSON
        headers.update(self.auth.headers())
        headers.update(call.headers)
        return headers

    def _may_retry(self, failure: _Failure, retry: RetryPolicy, attempt: int) -> bool:
        if retry is False or attempt > self.max_retries:
            return False
        return retry is True or failure.unsent

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Retry-After when the server gave one, else full jitter; never above backoff_max."""
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return self._random.uniform(0, ceiling)

    def _answer(self, call: _Call, raw: requests.Response, expect_body: bool) -> Response:
        """Turn a final HTTP answer into a Response, or raise the matching remote error."""
        status = raw.status_code
        if status >= 400:
            raise _client_error(call, raw)
        if status >= 300:
            raise RemoteRejected(f"{call.what} was redirected ({status}): is the base URL "
                                 f"{self.base_url} right?", http_status=status)
        headers = CaseInsensitiveDict(raw.headers)
        return Response(status=status, headers=headers, body=_body(call, raw, expect_body),
                        location=headers.get("Location") or headers.get("Content-Location"),
                        etag=headers.get("ETag"), last_modified=headers.get("Last-Modified"))

    # -- FHIR interactions -------------------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """GET [type]/[id]: the current version (404/410 raise RemoteRejected)."""
        path = f"{_type(resource_type)}/{_id(resource_id)}"
        return _expect_type(self.request("GET", path), resource_type)

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> dict[str, Any]:
        """GET [type]/[id]/_history/[vid]: one exact version."""
        path = f"{_type(resource_type)}/{_id(resource_id)}/_history/{_id(version_id)}"
        return _expect_type(self.request("GET", path), resource_type)

    def search(self, resource_type: str, params: Params = None, *,
               no_cache: bool = True) -> dict[str, Any]:
        """GET [type]?params: the first page as a searchset Bundle.

        ``no_cache`` sends ``Cache-Control: no-cache`` because HAPI otherwise serves cached
        results for 60 s, and a sync must see the writes it just made.
        """
        headers = {"Cache-Control": "no-cache"} if no_cache else None
        answer = self.request("GET", _type(resource_type), params=params, headers=headers)
        return _expect_type(answer, "Bundle")

    def pages(self, resource_type: str, params: Params = None, *,
              no_cache: bool = True) -> Iterator[dict[str, Any]]:
        """Every page of a search, following Bundle.link[next] until there is none.

        Relative next links are resolved against the base; a link to another origin raises
        RemoteRejected; a next link already followed (a server looping) ends the paging.
        """
        bundle = self.search(resource_type, params, no_cache=no_cache)
        followed: set[str] = set()
        while True:
            yield bundle
            link = _link(bundle, "next")
            if link is None:
                return
            url = self.resolve(link)
            if url in followed:
                log.warning("GET %s: the server repeated a next link; paging stopped",
                            urlsplit(url).path)
                return
            followed.add(url)
            bundle = _expect_type(self.request("GET", url), "Bundle")

    def search_all(self, resource_type: str, params: Params = None, *,
                   no_cache: bool = True) -> Iterator[dict[str, Any]]:
        """The matching resources of every page (``_include``d ones and outcomes left out)."""
        for bundle in self.pages(resource_type, params, no_cache=no_cache):
            for entry in bundle.get("entry") or []:
                mode = (entry.get("search") or {}).get("mode", "match")
                if mode == "match" and isinstance(entry.get("resource"), dict):
                    yield entry["resource"]

    def create(self, resource: Mapping[str, Any],
               if_none_exist: Params = None) -> Response:
        """POST [type]; with ``if_none_exist`` a conditional create (safe to retry).

        A plain create is retried only when the server certainly did not act on it (see
        RetryPolicy): repeating it after a lost answer would create a duplicate.
        """
        resource_type = _type(_resource_type(resource))
        headers = {}
        if if_none_exist:
            headers["If-None-Exist"] = _query(if_none_exist)
        retry: RetryPolicy = True if if_none_exist else "unsent"
        return self.request("POST", resource_type, json=resource, headers=headers, retry=retry)

    def update(self, resource: Mapping[str, Any], if_match: str | int | None = None) -> Response:
        """PUT [type]/[id]; ``if_match`` (a version id or ETag) makes it version-aware (409/412
        -> RemoteConflict when the server holds a newer version)."""
        resource_id = resource.get("id")
        if not isinstance(resource_id, str):
            raise ValueError("update needs a resource with an id")
        path = f"{_type(_resource_type(resource))}/{_id(resource_id)}"
        headers = {"If-Match": _etag(if_match)} if if_match is not None else None
        return self.request("PUT", path, json=resource, headers=headers)

    def conditional_update(self, resource_type: str, query: Params,
                           resource: Mapping[str, Any]) -> Response:
        """PUT [type]?query: update the one match, or create when nothing matches.

        The body must agree with the query (HAPI refuses an identifier that differs from the
        one searched on).
        """
        if _resource_type(resource) != resource_type:
            raise ValueError(f"a {resource.get('resourceType')} cannot update {resource_type}")
        if not query:
            raise ValueError("a conditional update needs search criteria")
        return self.request("PUT", _type(resource_type), params=query, json=resource)

    def delete(self, resource_type: str, resource_id: str, *,
               retry_statuses: Collection[int] = ()) -> Response:
        """DELETE [type]/[id] (``retry_statuses``: see request)."""
        return self.request("DELETE", f"{_type(resource_type)}/{_id(resource_id)}",
                            retry_statuses=retry_statuses)

    def transaction(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """POST a transaction (or batch) Bundle to the base; returns the response Bundle.

        Retried on every transient failure only when each entry is idempotent (PUT, DELETE,
        GET, conditional create); a bundle with a plain POST is retried only when unsent.
        """
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") not in (
                "transaction", "batch"):
            raise ValueError("transaction needs a Bundle of type transaction or batch")
        retry: RetryPolicy = True if _idempotent(bundle) else "unsent"
        answer = self.request("POST", "", json=bundle, retry=retry, expect_body=True)
        return _expect_type(answer, "Bundle")

    def capabilities(self, refresh: bool = False) -> Capabilities:
        """GET metadata, read once per client (pass ``refresh`` to read it again)."""
        if self._capabilities is None or refresh:
            statement = _expect_type(self.request("GET", "metadata"), "CapabilityStatement")
            self._capabilities = Capabilities.from_statement(statement)
        return self._capabilities


# -- helpers ---------------------------------------------------------------------------------


def _pooled_session() -> requests.Session:
    """A Session with a keep-alive pool and urllib3's own retries off (we retry ourselves)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=POOL_SIZE, pool_maxsize=POOL_SIZE,
                          max_retries=Retry(total=0, redirect=False, raise_on_status=False))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _check_base(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"base_url must be an http(s) URL without query, not {base_url!r}")
    return base_url.rstrip("/")


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with default ports filled in; ValueError for a bad port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _never_sent(exc: Exception) -> bool:
    """True when the connection was never established, so the server saw nothing."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def _transient(call: _Call, raw: requests.Response,
               retry_statuses: frozenset[int] = frozenset()) -> _Failure | None:
    """A 429, a 5xx or one of ``retry_statuses`` as a _Failure (with Retry-After and
    diagnostics); None for anything else."""
    status = raw.status_code
    if status != 429 and status < 500 and status not in retry_statuses:
        return None
    outcome, diagnostics = _outcome(raw)
    summary = f"{call.what} -> {status}"
    message = summary + (f": {diagnostics}" if diagnostics else "")
    return _Failure(message, summary, status, parse_retry_after(raw.headers.get("Retry-After")),
                    outcome, unsent=status == 429)


def _client_error(call: _Call, raw: requests.Response) -> RemoteRejected | RemoteConflict:
    """The error for a final 4xx: 409/412 are version conflicts, the rest are rejections."""
    status = raw.status_code
    outcome, diagnostics = _outcome(raw)
    message = f"{call.what} -> {status}" + (f": {diagnostics}" if diagnostics else "")
    kind = RemoteConflict if status in (409, 412) else RemoteRejected
    return kind(message, http_status=status, body=outcome)


def _outcome(raw: requests.Response) -> tuple[dict[str, Any] | None, str | None]:
    """The OperationOutcome in an error answer and its diagnostics as one line, if any."""
    try:
        doc = jsonio.loads(raw.content) if raw.content else None
    except ValueError:
        return None, None
    if not isinstance(doc, dict) or doc.get("resourceType") != "OperationOutcome":
        return None, None
    texts = []
    for issue in doc.get("issue") or []:
        if isinstance(issue, dict):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
            texts.append(str(text or issue.get("code") or "unspecified"))
    return doc, "; ".join(texts)[:1000] or None


def _body(call: _Call, raw: requests.Response, expect_body: bool) -> dict[str, Any] | None:
    """The JSON object of a 2xx answer; RemoteGarbage when one was expected and is missing."""
    if not raw.content.strip():
        if expect_body:
            raise RemoteGarbage(f"{call.what} -> {raw.status_code} with an empty body",
                                http_status=raw.status_code)
        return None
    try:
        doc = jsonio.loads(raw.content)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        return doc
    if expect_body:
        raise RemoteGarbage(f"{call.what} -> {raw.status_code} with a body that is not a JSON "
                            f"object ({raw.headers.get('Content-Type', 'no content type')})",
                            http_status=raw.status_code)
    log.warning("%s -> %d: ignoring a body that is not a JSON object", call.what,
                raw.status_code)
    return None


def _expect_type(answer: Response, resource_type: str) -> dict[str, Any]:
    """The body, which must be a resource of the given type (else RemoteGarbage)."""
    body = answer.body
    if body is None or body.get("resourceType") != resource_type:
        found = None if body is None else body.get("resourceType")
        raise RemoteGarbage(f"expected a {resource_type}, got {found or 'no resource'}",
                            http_status=answer.status)
    return body


def _link(bundle: Mapping[str, Any], relation: str) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == relation and link.get("url"):
            return str(link["url"])
    return None


def _idempotent(bundle: Mapping[str, Any]) -> bool:
    """True unless an entry is a POST without ifNoneExist (a create that could duplicate)."""
    for entry in bundle.get("entry") or []:
        request = entry.get("request") or {}
        if str(request.get("method", "")).upper() == "POST" and not request.get("ifNoneExist"):
            return False
    return True


def _resource_type(resource: Mapping[str, Any]) -> str:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise ValueError("the resource has no resourceType")
    return resource_type


def _type(resource_type: str) -> str:
    """A resource type name, checked so it cannot bend the URL path."""
    if not _TYPE.match(resource_type):
        raise ValueError(f"not a resource type: {resource_type!r}")
    return resource_type


def _id(value: str) -> str:
    """A FHIR id (or version id), checked so it cannot bend the URL path."""
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(f"not a FHIR id: {value!r}")
    return value


def _query(params: Params) -> str:
    """Search criteria as a query string (for If-None-Exist)."""
    if isinstance(params, str):
        return params.lstrip("?")
    items = params.items() if isinstance(params, Mapping) else params or []
    return urlencode(list(items), doseq=True)


def _etag(version: str | int) -> str:
    """If-Match value: a bare version id becomes the weak ETag FHIR servers expect."""
    text = str(version)
    return text if text.startswith(("W/", '"')) else f'W/"{text}"'


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date); None if absent
    or unreadable. A date in the past means 0."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        return seconds if seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
