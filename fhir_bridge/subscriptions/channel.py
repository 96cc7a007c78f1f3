"""Where notifications may go and which headers they may carry.

Endpoints must match a pattern of config ``subscriptions.allowed_endpoints``: a URL whose port
may be ``*`` and whose host may start with ``*.`` (any subdomain); the endpoint's path must start
with the pattern's path. Only http and https; no user info, no fragment. Everything else is
refused, so a subscriber cannot make the bridge post to an arbitrary (internal) address.

``channel.header`` entries (``Name: value``) are sent as HTTP headers, except names that would
change how the request is framed or routed (Host, Content-Type, Content-Length, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urlsplit

SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
#: Headers the bridge sets itself or that steer the connection: never taken from a client.
RESERVED_HEADERS = frozenset({
    "host", "content-type", "content-length", "content-encoding", "transfer-encoding",
    "connection", "keep-alive", "upgrade", "te", "trailer", "expect", "proxy-authorization",
    "proxy-connection", "accept-encoding", "user-agent", "cookie", "forwarded",
    "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"})
MAX_HEADERS = 10
MAX_HEADER_VALUE = 4000


@dataclass(frozen=True)
class _Pattern:
    scheme: str
    host: str  # lower case; "*.example.org" for subdomains
    port: int | None  # None: any port
    path: str


def _pattern(text: str) -> _Pattern:
    parts = urlsplit(text.replace(":*", ":0", 1) if ":*" in text else text)
    wildcard_port = ":*" in text
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ValueError(f"subscriptions.allowed_endpoints: {text!r} is not an http(s) URL")
    port = None if wildcard_port else (parts.port or _DEFAULT_PORTS[parts.scheme])
    return _Pattern(parts.scheme, parts.hostname.lower(), port, parts.path or "/")


def endpoint_problem(url: str, patterns: Iterable[str]) -> str | None:
    """Why ``url`` may not receive notifications, or None when an allow-list pattern admits it."""
    if not isinstance(url, str) or not url:
        return "is required"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in SCHEMES:
        return "must be an http or https URL"
    if not parts.hostname or parts.username is not None or parts.password is not None:
        return "must name a host and carry no user or password"
    if parts.fragment or any(c.isspace() for c in url):
        return "must not have a fragment or white space"
    segments = (parts.path or "/").split("/")
    if any(seg in (".", "..") or seg.lower().replace("%2e", ".") in (".", "..")
           for seg in segments):
        return "must not contain . or .. path segments"
    host = parts.hostname.lower()
    port = port or _DEFAULT_PORTS[parts.scheme]
    path = parts.path or "/"
    for pattern in map(_pattern, patterns):
        if pattern.scheme != parts.scheme:
            continue
        if pattern.host.startswith("*."):
            if not host.endswith(pattern.host[1:]):
                continue
        elif pattern.host != host:
            continue
        if pattern.port is not None and pattern.port != port:
            continue
        if path.startswith(pattern.path):
            return None
    return "is not on this server's list of allowed notification endpoints"


def check_patterns(patterns: Iterable[str]) -> None:
    """Fail early (at start-up) on a malformed allow-list."""
    for text in patterns:
        _pattern(text)


def parse_headers(entries: Iterable[object]) -> tuple[list[tuple[str, str]], list[tuple[int, str]]]:
    """``["Authorization: Bearer x", ...]`` -> ([(name, value)], [(index, problem)])."""
    headers: list[tuple[str, str]] = []
    problems: list[tuple[int, str]] = []
    entries = list(entries)
    if len(entries) > MAX_HEADERS:
        problems.append((MAX_HEADERS, f"at most {MAX_HEADERS} headers"))
    for index, entry in enumerate(entries):
        name, sep, value = str(entry).partition(":")
        name, value = name.strip(), value.strip()
        if not isinstance(entry, str) or not sep or not _TOKEN.match(name):
            problems.append((index, "must be 'Name: value' with a valid header name"))
        elif name.lower() in RESERVED_HEADERS or name.lower().startswith("proxy-"):
            problems.append((index, f"the header {name} is set by the server and cannot be "
                                    "chosen"))
        elif any(c in value for c in "\r\n\0") or len(value) > MAX_HEADER_VALUE:
            problems.append((index, "the value must be one line of at most "
                                    f"{MAX_HEADER_VALUE} characters"))
        else:
            headers.append((name, value))
    return headers, problems
