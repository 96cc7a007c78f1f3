"""The rest-hook sender: the one place notifications leave over HTTP.

One ``requests.Session`` per sender (keep-alive pool, no urllib3 retries: the delivery queue
retries with backoff, in order). TLS is verified unless config ``subscriptions.verify_tls`` says
otherwise (a CA bundle path is accepted); redirects are not followed (the allow-list was checked
for the endpoint, not for wherever it points); proxies and credentials from the environment are
not used, so channel headers go to the endpoint only. A send never raises: the result says what
happened. Logs hold the method, the endpoint's host and the status or exception type, never a
body, a URL path or a header value.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger("fhir_bridge.subscriptions.sender")

FHIR_JSON = "application/fhir+json"
USER_AGENT = "fhir-bridge-subscriptions/0.1"


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status: int | None  # HTTP status, None when no answer came
    error: str | None  # "HTTP 503", "ConnectionError", "Timeout", ... (never a body)
    milliseconds: float


class RestHookSender:
    def __init__(self, verify: bool | str = True, default_timeout: float = 10,
                 max_timeout: float = 60, session: requests.Session | None = None):
        self.verify = verify
        self.default_timeout = default_timeout
        self.max_timeout = max_timeout
        self.session = session or _session()

    def close(self) -> None:
        self.session.close()

    def send(self, method: str, url: str, body: bytes | None, content_type: str | None,
             headers: Sequence[tuple[str, str]] = (), timeout: float | None = None) -> SendResult:
        sent_headers = {name: value for name, value in headers}
        sent_headers["User-Agent"] = USER_AGENT
        if body is not None:
            sent_headers["Content-Type"] = content_type or FHIR_JSON
        seconds = min(float(timeout or self.default_timeout), self.max_timeout)
        started = time.perf_counter()
        host = urlsplit(url).netloc
        try:
            answer = self.session.request(method, url, data=body if body is not None else b"",
                                          headers=sent_headers, timeout=(min(5.0, seconds),
                                                                         seconds),
                                          verify=self.verify, allow_redirects=False)
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError, requests.exceptions.InvalidURL,
                requests.exceptions.SSLError) as exc:
            ms = (time.perf_counter() - started) * 1000
            name = "Timeout" if isinstance(exc, requests.Timeout) else type(exc).__name__
            log.info("rest-hook %s %s failed: %s after %.0f ms", method, host, name, ms)
            return SendResult(False, None, name, ms)
        ms = (time.perf_counter() - started) * 1000
        answer.close()
        ok = 200 <= answer.status_code < 300
        log.info("rest-hook %s %s -> %d in %.0f ms", method, host, answer.status_code, ms)
        return SendResult(ok, answer.status_code, None if ok else f"HTTP {answer.status_code}",
                          ms)


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=10, pool_maxsize=10,
                          max_retries=Retry(total=0, redirect=False, raise_on_status=False))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
