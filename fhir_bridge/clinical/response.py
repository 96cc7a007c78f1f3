"""Treatment response: baseline and latest score per instrument, response, remission, and
"review treatment" when an adequate trial at a steady dose brought no response. The rules are
data (``mappings/treatment-response.yaml``), each with its source."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from ..mapping.valuemaps import MAPPINGS_DIR


@lru_cache(maxsize=4)
def rules(directory: Path = MAPPINGS_DIR) -> dict[str, Any]:
    with open(directory / "treatment-response.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@dataclass
class Trend:
    instrument: str
    points: list[dict] = field(default_factory=list)  # {assessment_id, effective, total, band}
    change_percent: float | None = None
    response: bool = False
    remission: bool | None = None  # None: the instrument has no remission rule
    weeks_at_steady_dose: float | None = None
    review_treatment: bool = False
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"instrument": self.instrument, "baseline": self.points[0],
                "latest": self.points[-1], "change_percent": self.change_percent,
                "response": self.response, "remission": self.remission,
                "weeks_at_steady_dose": self.weeks_at_steady_dose,
                "review_treatment": self.review_treatment, "reasons": self.reasons,
                "trend": self.points}


def _day(value: str) -> dt.date:
    return dt.date.fromisoformat(value[:10])


def trends(assessments: list[dict], prescriptions: list[dict]) -> list[Trend]:
    """One trend per instrument with a total, oldest score first."""
    config = rules()
    by_instrument: dict[str, list[dict]] = {}
    for record in sorted(assessments, key=lambda a: (a["effective"], a["id"])):
        if "total" in record:
            by_instrument.setdefault(record["instrument"], []).append(record)
    active = [p for p in prescriptions if p["status"] == "active"]
    out = []
    for instrument, scored in sorted(by_instrument.items()):
        trend = Trend(instrument, [{"assessment_id": a["id"], "effective": a["effective"],
                                    "total": a["total"], "band": a.get("band")}
                                   for a in scored])
        baseline, latest = scored[0]["total"], scored[-1]["total"]
        if len(scored) > 1 and baseline > 0:
            trend.change_percent = round(100.0 * (latest - baseline) / baseline, 1)
            trend.response = -trend.change_percent >= config["response"]["drop_percent_at_least"]
        remission = config["remission"].get(instrument)
        if remission is not None:
            trend.remission = latest < remission["below"]
        if active and len(scored) > 1:
            # The dose has been steady since the newest of the active prescriptions started
            # (a dose change starts a new prescription).
            since = max(_day(p["start_date"]) for p in active)
            weeks = (_day(scored[-1]["effective"]) - since).days / 7
            trend.weeks_at_steady_dose = round(max(weeks, 0.0), 1)
            needed = config["adequate_trial"]["weeks_at_steady_dose"]
            if weeks >= needed and not trend.response and not trend.remission:
                trend.review_treatment = True
                trend.reasons.append(
                    f"no response ({trend.change_percent:+.0f}% from baseline {baseline}) after "
                    f"{trend.weeks_at_steady_dose:g} weeks at a steady dose (adequate trial: "
                    f"{needed} weeks)")
        out.append(trend)
    return out
