"""Serve a Flask app on 127.0.0.1 from a thread, for tests that speak plain HTTP to it."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from werkzeug.serving import make_server

from fhir_bridge.api.server import BridgeRequestHandler


@contextmanager
def serving(app) -> Iterator[str]:
    """The app on a free loopback port, with the request handler `fhir-bridge serve` uses;
    yields its base URL (http://127.0.0.1:PORT)."""
    server = make_server("127.0.0.1", 0, app, threaded=True,
                         request_handler=BridgeRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
