"""The reverse half of the mapping rules: FHIR elements -> internal fields (used by
``engine.Mapper``), and the match conditions that say which mapping reads a resource.

Items of an ``each`` list are read one by one; what a transform reports as not carried over is
named with the item's index (``activity[2].detail.code``), so a problem says which item it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from ..errors import MappingError
from . import paths
from .context import Context
from .transforms import get_transform

if TYPE_CHECKING:
    from .engine import Mapper, Rule


def matches(cond: dict, resource: dict, mapper: "Mapper") -> bool:
    found = paths.get(resource, cond["fhir"])
    if found is None:
        return False
    if "transform" in cond:
        ctx = Context(mapper, resource=resource)
        try:
            found = get_transform(cond["transform"]).reverse(found, cond.get("args") or {}, ctx)
        except (MappingError, KeyError, TypeError, ValueError):
            return False
        if isinstance(found, tuple):
            found = found[0]
    if "equals" in cond:
        return found == cond["equals"]
    return found is not None


def apply_reverse(rules: Iterable["Rule"], source: dict, record: dict, ctx: Context) -> None:
    for rule in rules:
        if rule.direction == "forward" or not rule.internal:
            continue
        if all(p.startswith("_parent.") for p in rule.internal):
            continue  # the parent record carries that field
        fhir_value = paths.get(source, rule.fhir)
        if fhir_value is None:
            continue
        if rule.each is not None:
            items = []
            for index, item in enumerate(fhir_value):
                built: dict[str, Any] = {}
                before = len(ctx.unmapped)
                apply_reverse(rule.each, item, built, ctx)
                ctx.unmapped[before:] = [_within(f"{rule.fhir}[{index}]", path, why)
                                         for path, why in ctx.unmapped[before:]]
                items.append(built)
            paths.put(record, rule.internal[0], items)
            continue
        before = len(ctx.unmapped)
        value = rule.transform.reverse(fhir_value, rule.args, ctx)
        ctx.unmapped[before:] = [(rule.fhir if "/" not in path and rule.fhir.endswith(path)
                                  else path, why) for path, why in ctx.unmapped[before:]]
        if rule.multi:
            for p, v in zip(rule.internal, value or ()):
                if v is not None and not p.startswith("_parent."):
                    paths.put(record, p, v)
        elif value is not None:
            paths.put(record, rule.internal[0], value)


def _within(item: str, path: str, why: str) -> tuple[str, str]:
    """A note of an item's rule, named under the item: references stay as they are."""
    if "/" in path or path.startswith(item):  # a reference: found where it is by the caller
        return path, why
    head = item.split("[")[0]
    rest = path[len(head) + 1:] if path.startswith(head + ".") else path
    return f"{item}.{rest}", why
