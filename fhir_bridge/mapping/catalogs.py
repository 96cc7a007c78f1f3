"""Clinical catalogs kept as data: rating-scale instruments and monitoring measurements."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from .valuemaps import MAPPINGS_DIR


@dataclass(frozen=True)
class Item:
    number: int
    text: str
    min: int
    max: int
    code: str | None = None  # terminology key, when the item has a verified code
    in_total: bool = True
    optional: bool = False
    asked_if: tuple[int, int] | None = None  # (item, answer) that must come first
    #: The answers' terminology keys in score order (answers[n] scores n: LOINC answer codes),
    #: or () when the answers are plain numbers min..max.
    answers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scoring:
    """How an instrument's answers read: bands of the total (or a positive rule), risk levels
    from yes answers, alerts. ``source`` is where the rules come from."""

    source: str
    bands: tuple[dict, ...] = ()
    positive: dict | None = None
    risk: tuple[dict, ...] = ()
    alerts: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Instrument:
    key: str
    title: str
    panel: str
    total: str | None
    items: tuple[Item, ...]
    scoring: Scoring | None = None

    def item(self, number: int) -> Item | None:
        return next((i for i in self.items if i.number == number), None)


@dataclass(frozen=True)
class MeasurementKind:
    key: str
    code: str
    category: str
    unit: str
    components: tuple[dict, ...] = ()
    profile: str | None = None  # the specific US Core profile, where one exists


@lru_cache(maxsize=4)
def instruments(directory: Path = MAPPINGS_DIR) -> dict[str, Instrument]:
    with open(directory / "instruments.yaml", encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    return {
        key: Instrument(key, body["title"], body["panel"], body.get("total"),
                        tuple(_item(item, body.get("answers")) for item in body["items"]),
                        _scoring(body.get("scoring")))
        for key, body in raw.items()
    }


def _item(raw: dict, answers: list[str] | None) -> Item:
    """An item; ``answers`` of the instrument apply to items that name none of their own."""
    fields = {**raw, "answers": tuple(raw.get("answers", answers) or ())}
    if "asked_if" in raw:
        fields["asked_if"] = tuple(raw["asked_if"])
    return Item(**fields)


def _scoring(raw: dict | None) -> Scoring | None:
    if raw is None:
        return None
    return Scoring(source=raw.get("source", ""), bands=tuple(raw.get("bands") or ()),
                   positive=raw.get("positive"), risk=tuple(raw.get("risk") or ()),
                   alerts=tuple(raw.get("alerts") or ()))


@lru_cache(maxsize=4)
def measurement_kinds(directory: Path = MAPPINGS_DIR) -> dict[str, MeasurementKind]:
    with open(directory / "measurements.yaml", encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    return {
        key: MeasurementKind(key, body["code"], body["category"], body["unit"],
                             tuple(body.get("components") or ()), body.get("profile"))
        for key, body in raw.items()
    }
