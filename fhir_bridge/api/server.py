"""The HTTP request handler of the served app (``fhir-bridge serve`` and the tests' live
server): werkzeug's, with the errors its HTTP parser answers before the app sees a request
(400 malformed request line or header, 414 request line over 65,536 bytes, 431 over 100
headers or a header line over 65,536 bytes, 505 HTTP/2 or later in the request line) sent
as an OperationOutcome (application/fhir+json), the error shape of /fhir and /api, instead
of an HTML page.

The limits are the Python standard library's (http.server, http.client). Behind gunicorn
those errors are gunicorn's own (docs/fhir-api.md, "Errors and limits of the HTTP layer").
"""

from __future__ import annotations

from http import HTTPStatus

from werkzeug.serving import WSGIRequestHandler

from ..errors import Issue
from ..fhir import jsonio
from .outcome import http_issue_code, operation_outcome

#: What each error of the HTTP layer means, and which part of the request it is about. The
#: parser's own message is not sent or logged: it quotes the request line (a query string can
#: hold a name).
_MESSAGES = {
    400: ("(request)", "the request line or a header is malformed"),
    414: ("(request line)", "the request line is longer than 65536 bytes"),
    431: ("(headers)", "the request has more than 100 headers or a header line longer than "
                       "65536 bytes"),
    505: ("(request line)", "the HTTP version is not supported"),
}


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase.lower()
    except ValueError:
        return "the request cannot be handled"


def error_body(code: int) -> tuple[str, bytes]:
    """(message, OperationOutcome JSON) for an error the HTTP layer answers."""
    where, message = _MESSAGES.get(code, ("(request)", _phrase(code)))
    outcome = operation_outcome(message, [Issue(where, message, http_issue_code(code))])
    return message, jsonio.dumpb(outcome)


class BridgeRequestHandler(WSGIRequestHandler):
    """werkzeug's handler; HTTP-layer errors are OperationOutcome JSON."""

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        text, body = error_body(code)
        self.log_error("code %d, message %s", code, text)
        if self.request_version == "HTTP/0.9":
            # Set when the request line could not be parsed: answer with a status line and
            # headers all the same (no client speaks HTTP/0.9).
            self.request_version = self.protocol_version
        self.send_response(code)
        self.send_header("Connection", "close")
        self.close_connection = True
        if code >= 200 and code not in (204, 205, 304):
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        else:
            self.end_headers()
