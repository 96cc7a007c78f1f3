"""Scalars: copies, dates, numbers, texts, value maps, flags."""

from __future__ import annotations

from .registry import transform


@transform("copy")
def _copy():
    return (lambda v, a, c: v), (lambda v, a, c: v)


@transform("date")
def _date():
    """An internal date. Read back from a FHIR date or dateTime (the date part)."""
    return (lambda v, a, c: v), (lambda v, a, c: v[:10] if isinstance(v, str) else None)


@transform("number")
def _number():
    """Decimals as floats internally; whole numbers are written without a fraction."""
    def forward(v, a, c):
        return int(v) if float(v).is_integer() else v

    return forward, (lambda v, a, c: float(v))


@transform("text_concept")
def _text_concept():
    """Free text as a CodeableConcept with only text."""
    return (lambda v, a, c: {"text": v}), (lambda v, a, c: v.get("text"))


@transform("annotation")
def _annotation():
    return (lambda v, a, c: [{"text": v}]), (lambda v, a, c: v[0].get("text") if v else None)


@transform("value_map")
def _value_map():
    """A word through a value map of value-maps.yaml; lists are mapped item by item."""
    def forward(v, a, c):
        vm = c.value_maps[a["map"]]
        return [vm.to_fhir(x) for x in v] if isinstance(v, list) else vm.to_fhir(v)

    def reverse(v, a, c):
        vm = c.value_maps[a["map"]]
        return [vm.to_internal(x) for x in v] if isinstance(v, list) else vm.to_internal(v)

    return forward, reverse


@transform("boolean_flag")
def _boolean_flag():
    """Internal True is written as the constant in args; anything read back is True."""
    return (lambda v, a, c: a["value"] if v else None), (lambda v, a, c: True)
