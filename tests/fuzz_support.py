"""What the fuzz tests share: how they report the number of cases they ran (a JSON file under
.run/ and a line in pytest's terminal summary). The store a refused request must leave as it
was is conftest.snapshot (every table but the audit log)."""

from __future__ import annotations

import json
import time
from collections import Counter
from contextlib import contextmanager
from typing import Callable, Iterator

from fhir_bridge import PROJECT_ROOT

RUN_DIR = PROJECT_ROOT / ".run"


@contextmanager
def counted(request, name: str, cases: Counter, statuses: Counter,
            describe: Callable[[float, dict], tuple[str, dict]]) -> Iterator[None]:
    """Around a test module: when it ran cases, report them with the seconds it took and the
    HTTP statuses seen; ``describe(seconds, statuses)`` words the line and the details."""
    started = time.monotonic()
    yield
    if cases:
        seconds = round(time.monotonic() - started, 1)
        line, details = describe(seconds, {str(k): v for k, v in sorted(statuses.items())})
        report(request.config, name, line, details)


def report(config, name: str, line: str, details: dict) -> None:
    """Write ``details`` to .run/<name>.json and ``line`` to the terminal summary."""
    RUN_DIR.mkdir(exist_ok=True)
    path = RUN_DIR / f"{name}.json"
    path.write_text(json.dumps(details, indent=2, sort_keys=True) + "\n")
    _SummaryLines.add(config, f"{line} (details in {path.relative_to(PROJECT_ROOT)})")


class _SummaryLines:
    """A plugin, registered at run time, writing lines to pytest's terminal summary."""

    NAME = "fhir-bridge-fuzz-summary"

    def __init__(self):
        self.lines: list[str] = []

    @classmethod
    def add(cls, config, line: str) -> None:
        plugin = config.pluginmanager.get_plugin(cls.NAME)
        if plugin is None:
            plugin = cls()
            config.pluginmanager.register(plugin, cls.NAME)
        plugin.lines.append(line)

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.section("fuzz cases")
        for line in self.lines:
            terminalreporter.write_line(line)
