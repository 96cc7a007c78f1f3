"""Logging set-up, in one place. Logs never carry names, birth dates or clinical free text:
code logs ids, counts and error types only, and HTTP request lines are logged without their
query strings (a search value can be a name: ``Patient?family=...``)."""

from __future__ import annotations

import logging
import re

_REQUEST_LINE = re.compile(r"^([A-Z]+ [^ ?]*)\?\S*( HTTP/[0-9.]+)$")
_URL = re.compile(r"^((?:https?://|/)[^ ?]*)\?\S*$")
#: Loggers that write request lines or URLs: the development server's access log and
#: urllib3's connection log (DEBUG) under requests.
URL_LOGGERS = ("werkzeug", "urllib3.connectionpool")


def _drop_query(arg: object) -> object:
    if not isinstance(arg, str) or "?" not in arg:
        return arg
    arg = _REQUEST_LINE.sub(r"\1?(query omitted)\2", arg)
    return _URL.sub(r"\1?(query omitted)", arg)


class DropQueryStrings(logging.Filter):
    """Rewrites request-line and URL arguments ('GET /fhir/Patient?family=X HTTP/1.1') of
    access-log records to their path only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_drop_query(a) for a in record.args)
        return True


def configure(level: str | int = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropQueryStrings) for f in logger.filters):
            logger.addFilter(DropQueryStrings())
