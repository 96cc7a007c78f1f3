"""The allowed range of every number in a record, in one table (docs/model.md, "Numbers",
lists the same). A value outside its range, a string where a number is meant, a boolean, and a
fraction where a whole number is meant are refused with 422 naming the field.

The bounds are generous sanity limits, not clinical rules: they keep values a person could
mean, and refuse what no record needs (``1e300``, ``2e19``, ``1e-320``). Clinical limits
(a maximum daily dose, an item's answer range) are checked separately by the safety rules and
the rating-scale definitions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bounds:
    low: float
    high: float
    integer: bool  # whole numbers only
    fields: str  # where it is used, for docs/model.md


RANGES: dict[str, Bounds] = {
    # Medication
    "dose": Bounds(0.001, 10_000, False, "prescription and dose change `dose.value`"),
    "dispense-quantity": Bounds(0.001, 10_000, False, "`quantity.value` (amount to dispense)"),
    "frequency": Bounds(1, 24, True, "prescription and dose change `frequency`"),
    "period": Bounds(0.01, 1_000, False,
                     "prescription and dose change `period`, activity `schedule.period`"),
    "refills": Bounds(0, 12, True, "`refills`"),
    "days-supply": Bounds(1, 365, True, "`days_supply`, adherence `fills[].days_supply`"),
    # Care plans
    "schedule-frequency": Bounds(1, 30, True, "activity `schedule.frequency`"),
    "goal-target": Bounds(0, 100_000, False, "goal `target.value`"),
    # Assessments (each item's own range comes from mappings/instruments.yaml)
    "item-number": Bounds(1, 99, True, "assessment `items[].number`"),
    "item-value": Bounds(0, 99, True, "assessment `items[].value`"),
    "total": Bounds(0, 999, True, "assessment `total`"),
    # Adherence
    "doses-prescribed": Bounds(1, 100_000, True, "adherence `doses_prescribed`"),
    "doses-taken": Bounds(0, 100_000, True, "adherence `doses_taken`"),
    "percent": Bounds(0, 100, False, "adherence `proportion_percent`"),
    # Measurements
    "measurement": Bounds(0, 100_000, False,
                          "measurement `value` and `components[].value` (in the kind's unit)"),
}


def bounds(name: str) -> Bounds:
    return RANGES[name]


def plain(number: float) -> str:
    """10000, 0.001, 100000: as the docs and error messages write a bound."""
    return f"{number:g}" if number < 1e6 else f"{number:.0f}"


def table_rows() -> list[str]:
    """The rows of the table in docs/model.md ("Numbers"); a test keeps the two the same."""
    return [f"| {b.fields} | {'whole number' if b.integer else 'number'} | {plain(b.low)} | "
            f"{plain(b.high)} |" for b in RANGES.values()]
