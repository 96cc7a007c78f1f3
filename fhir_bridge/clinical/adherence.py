"""Adherence from refill data: proportion of days covered (PDC), and the threshold at which a
proportion counts as adherent. Rules in ``mappings/adherence-rules.yaml`` with their sources."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..mapping.valuemaps import MAPPINGS_DIR


@lru_cache(maxsize=4)
def rules(directory: Path = MAPPINGS_DIR) -> dict[str, Any]:
    with open(directory / "adherence-rules.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def proportion_of_days_covered(start: str, end: str, fills: Iterable[dict]) -> float:
    """Percent of the days from start to end (both included) covered by the fills
    ({date, days_supply}); an early refill's supply starts when the previous supply ends."""
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    days = (last - first).days + 1
    covered = 0
    free_from = dt.date.min
    for fill in sorted(fills, key=lambda f: f["date"]):
        begin = max(dt.date.fromisoformat(fill["date"]), free_from)
        finish = begin + dt.timedelta(days=fill["days_supply"])  # first day not covered
        free_from = finish
        overlap = (min(finish, last + dt.timedelta(days=1)) - max(begin, first)).days
        covered += max(overlap, 0)
    return round(100.0 * covered / days, 1)


def finding(proportion_percent: float) -> str:
    return "adherent" if proportion_percent >= rules()["adherent_at_percent"] else "non-adherent"
