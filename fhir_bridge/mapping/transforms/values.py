"""Observation values other systems send for a measurement: valueQuantity is read by
measurement_value; valueInteger and a number in valueString are the same number in the kind's
own unit; anything else (a CodeableConcept, text) is reported, the element kept as sent."""

from __future__ import annotations

from ..catalogs import measurement_kinds
from ..context import Context
from .codes import decoded
from .registry import transform


def _kind_unit(c: Context) -> str | None:
    key = decoded(c, ["measurements"], "measurement", (c.resource or {}).get("code") or {})
    return next((k.unit for k in measurement_kinds().values() if k.code == key), None)


@transform("measurement_plain_value")
def _measurement_plain_value():
    """Reverse only: valueInteger / valueString / valueCodeableConcept -> [value, unit]."""
    def reverse(v, a, c):
        element = a["element"]
        number = None
        if isinstance(v, bool) or isinstance(v, (dict, list)):
            number = None
        elif isinstance(v, (int, float)):
            number = float(v)
        else:
            try:
                number = float(str(v).strip())
            except ValueError:
                number = None
        if number is None:
            c.unmapped.append((element, "a measurement holds a number in its kind's unit"))
            return None, None
        return number, _kind_unit(c)

    return (lambda v, a, c: None), reverse
