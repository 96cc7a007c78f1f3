"""A real HTTP receiver on 127.0.0.1 for subscription tests: a therapist's system.

It records every request (method, path, headers, parsed JSON body) and answers ``status``
(200 unless a test changes it). ``stop()`` closes the port, so sending fails with connection
refused; ``start()`` listens again on the same port (the system is back).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None for an empty body

    @property
    def parameters(self) -> dict:
        """entry[0] of a notification Bundle: the SubscriptionStatus Parameters."""
        return self.body["entry"][0]["resource"]

    def param(self, name: str) -> Any:
        for p in self.parameters["parameter"]:
            if p["name"] == name:
                return next(v for k, v in p.items() if k.startswith("value"))
        return None

    @property
    def type(self) -> str:
        return self.param("type")

    @property
    def event_numbers(self) -> list[int]:
        return [int(part["valueString"]) for p in self.parameters["parameter"]
                if p["name"] == "notification-event"
                for part in p["part"] if part["name"] == "event-number"]

    def events(self) -> list[dict[str, list]]:
        """Each notification-event as {part name: [values]}."""
        out = []
        for p in self.parameters["parameter"]:
            if p["name"] == "notification-event":
                parts: dict[str, list] = {}
                for part in p["part"]:
                    value = next(v for k, v in part.items() if k.startswith("value"))
                    parts.setdefault(part["name"], []).append(value)
                out.append(parts)
        return out


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.status = 200
        self.port = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with receiver._lock:
                    receiver.requests.append(Received(self.command, self.path,
                                                      dict(self.headers.items()), body))
                    status = receiver.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_PUT = _handle

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def notifications(self, kind: str | None = "event-notification") -> list[Received]:
        with self._lock:
            found = [r for r in self.requests if r.body is not None
                     and r.body.get("resourceType") == "Bundle"]
        return [r for r in found if kind is None or r.type == kind]
