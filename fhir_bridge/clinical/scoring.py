"""Reading a rating scale: the band of its total, a risk level, alerts that need attention
today. The rules are data (``mappings/instruments.yaml`` ``scoring``), each with its source."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..mapping.catalogs import Instrument

RISK_ORDER = ("none", "low", "moderate", "high")


@dataclass(frozen=True)
class Alert:
    alert: str  # e.g. suicide-risk
    text: str


@dataclass
class Reading:
    band: str | None = None
    band_text: str | None = None
    risk: str | None = None
    risk_text: str | None = None
    alerts: list[Alert] = field(default_factory=list)


def read(instrument: Instrument, answers: dict[int, int], total: int | None) -> Reading:
    """What the answers of one assessment mean, by the instrument's scoring rules."""
    rules = instrument.scoring
    reading = Reading()
    if rules is None:
        return reading
    if rules.positive is not None:
        met = total is not None and total >= rules.positive["total_at_least"] and all(
            answers.get(int(item), -1) >= least
            for item, least in rules.positive["items_at_least"].items())
        band = next(b for b in rules.bands if b["band"] == ("positive" if met else "negative"))
        reading.band, reading.band_text = band["band"], band["text"]
    elif total is not None:
        for band in rules.bands:
            if band["min"] <= total <= band["max"]:
                reading.band, reading.band_text = band["band"], band["text"]
                break
    if rules.risk:
        reading.risk, reading.risk_text = "none", "No suicide risk identified by the screener"
        for rule in rules.risk:
            if all(answers.get(item) == 1 for item in rule["all_yes"]):
                reading.risk, reading.risk_text = rule["level"], rule["text"]
                break
    for rule in rules.alerts:
        if "item" in rule and answers.get(rule["item"], 0) >= rule["at_least"]:
            reading.alerts.append(Alert(rule["alert"], rule["text"]))
        elif "risk_at_least" in rule and reading.risk is not None and \
                RISK_ORDER.index(reading.risk) >= RISK_ORDER.index(rule["risk_at_least"]):
            reading.alerts.append(Alert(rule["alert"], rule["text"]))
    return reading
