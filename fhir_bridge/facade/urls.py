"""The one place the FHIR base URL is decided: every link, fullUrl, Location and notification
the bridge builds starts with :func:`fhir_base`.

- ``public_base_url`` set (config): that, always. It is the FHIR base as clients see it, e.g.
  ``https://bridge.example.org/fhir``.
- Otherwise, inside a request: the scheme and host the client used (``Host``), plus ``/fhir``.
  ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` replace them only when ``trust_proxy`` is
  true (a reverse proxy that sets them is in front; otherwise anyone could forge them).
- Otherwise (a background worker, no request): ``http://<server.host>:<server.port>/fhir``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from flask import has_request_context, request

FHIR_PATH = "/fhir"
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])"
                   r"(?::\d{1,5})?$")


def fhir_base(config: Mapping[str, Any]) -> str:
    """The FHIR base URL (no trailing slash) for this request, or for background work."""
    configured = config.get("public_base_url") or config.get("fhir_base_url")
    if configured:
        return str(configured).rstrip("/")
    if has_request_context():
        scheme, host = request.scheme, request.host
        if config.get("trust_proxy") is True:
            scheme = _first(request.headers.get("X-Forwarded-Proto"), ("http", "https"),
                            scheme)
            host = _forwarded_host(request.headers.get("X-Forwarded-Host"), host)
        return f"{scheme}://{host}{request.script_root}{FHIR_PATH}"
    server = config.get("server") or {}
    return f"http://{server.get('host', '127.0.0.1')}:{server.get('port', 8080)}{FHIR_PATH}"


def _first(header: str | None, allowed: tuple[str, ...], default: str) -> str:
    """The first (client-nearest proxy's) value of a comma-separated forwarding header."""
    if not header:
        return default
    value = header.split(",")[0].strip().lower()
    return value if value in allowed else default


def _forwarded_host(header: str | None, default: str) -> str:
    if not header:
        return default
    value = header.split(",")[0].strip()
    return value if _HOST.match(value) else default
