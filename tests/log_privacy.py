"""A pytest plugin: every log record emitted anywhere during the test session is scanned for
the fixture people's names and birth dates (patients, caregivers, practitioners), and so is
the output of every command-line run a test hands to ``SCANNER.scan_output`` (tests/test_cli.py
and tests/test_zz_log_privacy.py do). The check itself is tests/test_zz_log_privacy.py, which
runs last."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import orjson

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "internal"
PEOPLE = ("patients", "caregivers", "practitioners")


def forbidden_strings() -> set[str]:
    """Family names, given names of 3+ letters, and birth dates of every fixture person."""
    found: set[str] = set()
    for path in FIXTURES.glob("*.json"):
        doc = orjson.loads(path.read_bytes())
        for collection in PEOPLE:
            for person in doc.get(collection, []):
                name = person.get("name") or {}
                found.add(name.get("family", ""))
                found.update(g for g in name.get("given", []) if len(g) >= 3)
                if person.get("birth_date"):
                    found.add(person["birth_date"])
    found.discard("")
    return found


class Scanner(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.forbidden = forbidden_strings()
        self.pattern = re.compile(
            r"(?<![\w-])(" + "|".join(re.escape(s) for s in sorted(self.forbidden)) + r")(?![\w-])",
            re.IGNORECASE)
        self.scanned = 0
        self.outputs = 0  # command-line outputs scanned
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is scanned as its raw parts
            text = f"{record.msg} {record.args}"
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + repr(record.exc_info[1])
        self.scanned += 1
        self._check(f"{record.name} {record.levelname}", text)

    def scan_output(self, source: str, text: str) -> list[str]:
        """Scan a command's stdout or stderr (``source`` says which); the leaks it found."""
        self.outputs += 1
        return self._check(source, text)

    def _check(self, source: str, text: str) -> list[str]:
        found = []
        for match in self.pattern.finditer(text):
            start = max(0, match.start() - 60)
            found.append(f"{source}: {text[start:match.end() + 60]}")
        self.leaks.extend(found)
        return found


SCANNER = Scanner()


def pytest_configure(config) -> None:
    root = logging.getLogger()
    root.addHandler(SCANNER)
    root.setLevel(logging.DEBUG)  # scan what DEBUG would show, too


def pytest_collection_modifyitems(session, config, items) -> None:
    """The scan runs after everything else in the session."""
    last = [i for i in items if i.module.__name__.endswith("test_zz_log_privacy")]
    items[:] = [i for i in items if i not in last] + last
