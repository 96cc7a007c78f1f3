"""Logging set-up, in one place. Logs never carry names, birth dates or clinical free text:
code logs ids, counts and error types only, and HTTP request lines are logged without their
query strings (a search value can be a name: ``Patient?family=...``), on every status.

The development server (werkzeug) colours the request line of every answer but a 200 with ANSI
escape codes; the filter removes any escape code first and then cuts every query string it
finds, wherever it sits in the argument (quoted, coloured, inside an error message), so no
wrapping can keep a query in the log. Log output therefore never holds colour codes either.
"""

from __future__ import annotations

import logging
import re

#: ANSI escape sequences (CSI ... final byte), as werkzeug writes them around request lines.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
#: A query string in a request line: from the first '?' to the HTTP version (a decoded query
#: may hold spaces and quotes), also where an error message quotes the request line.
_REQUEST_QUERY = re.compile(r"\?.*(?= HTTP/[0-9])")
#: Any other query string (a URL): from '?' to the next whitespace.
_QUERY = re.compile(r"\?(?!\(query omitted\))\S+")
OMITTED = "?(query omitted)"
#: Loggers that write request lines or URLs: the development server's access log and
#: urllib3's connection log (DEBUG) under requests.
URL_LOGGERS = ("werkzeug", "urllib3.connectionpool")


def clean(text: str) -> str:
    """``text`` without ANSI escape codes and with every query string cut."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if "?" in text:
        text = _QUERY.sub(OMITTED, _REQUEST_QUERY.sub(OMITTED, text))
    return text


def _clean_arg(arg: object) -> object:
    return clean(arg) if isinstance(arg, str) else arg


class DropQueryStrings(logging.Filter):
    """Rewrites the message and every string argument of a record ('GET
    /fhir/Patient?family=X HTTP/1.1', coloured or not) to carry no query string and no
    colour codes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = clean(record.msg)
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_clean_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _clean_arg(v) for k, v in record.args.items()}
        return True


def configure(level: str | int = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropQueryStrings) for f in logger.filters):
            logger.addFilter(DropQueryStrings())
