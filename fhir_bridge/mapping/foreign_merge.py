"""The three-way merge of a foreign resource (mapping/foreign.py): the sender's original ``o``,
the bridge's rendering when it was read ``b`` (the baseline) and its rendering now ``n``. An
element where ``b`` equals ``n`` is the sender's, as sent; one the practice changed is the
bridge's. Lists are aligned item by item (by the leaves they share), choice elements keep one
type, and a number read from the sender's plain type goes back in it."""

from __future__ import annotations

import copy
import re
from typing import Any

MISSING: Any = object()


def merge(o: Any, b: Any, n: Any) -> Any:
    if b == n:
        return o if o is MISSING else copy.deepcopy(o)
    if isinstance(o, dict) and isinstance(b, dict) and isinstance(n, dict) and \
            not _atomic(b) and not _atomic(n):
        b, n = _in_senders_type(o, b, n)
        out = {}
        for key in list(o) + [k for k in n if k not in o]:
            value = merge(o.get(key, MISSING), b.get(key, MISSING), n.get(key, MISSING))
            if value is not MISSING:
                out[key] = value
        return _one_choice(out, o, n)
    if isinstance(o, list) and isinstance(b, list) and isinstance(n, list):
        return _merge_list(o, b, n)
    return n if n is MISSING else copy.deepcopy(n)


_PLAIN = {"valueString": str, "valueInteger": int, "valueDecimal": float}


def _in_senders_type(o: dict, b: dict, n: dict) -> tuple[dict, dict]:
    """A number without a unit (UCUM "1": a score) the bridge writes as valueQuantity, read
    from the sender's plain valueString, valueInteger or valueDecimal (US Core's PHQ-9 total is
    "12"): baseline and current are compared in the sender's type, so a changed score goes back
    as the type it came as. A measurement's Quantity carries its unit: it replaces the type."""
    for key, kind in _PLAIN.items():
        was, now = b.get("valueQuantity"), n.get("valueQuantity")
        if key not in o or key in b or key in n or not isinstance(was, dict) or \
                not isinstance(now, dict) or was.get("code") != "1" or \
                _number(o[key]) is None or _number(o[key]) != was.get("value") or \
                not isinstance(now.get("value"), (int, float)):
            continue
        if {k: v for k, v in was.items() if k != "value"} != \
                {k: v for k, v in now.items() if k != "value"}:
            continue  # a unit the bridge changed: its Quantity
        value = now["value"]
        if kind is int and not float(value).is_integer():
            continue
        whole = float(value).is_integer()
        plain = (str(int(value)) if whole else str(value)) if kind is str else kind(value)
        b = {**{k: v for k, v in b.items() if k != "valueQuantity"}, key: o[key]}
        n = {**{k: v for k, v in n.items() if k != "valueQuantity"}, key: plain}
    return b, n


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _one_choice(out: dict, o: dict, n: dict) -> dict:
    """One type of a choice element (value[x], effective[x], ...): a type the bridge wrote
    anew replaces the sender's other type (valueQuantity for the sent valueInteger)."""
    for key in [k for k in n if k not in o]:
        found = _CHOICE.match(key)
        if found:
            for other in [k for k in o if k != key and k.startswith(found.group(1))
                          and _CHOICE.match(k) and k not in n]:
                out.pop(other, None)
    return out


_CHOICE = re.compile(r"^(value|effective|onset|abatement|medication|occurrence|scheduled|"
                     r"deceased|multipleBirth|reported|asNeeded|performed|born|timing)[A-Z]")


def other_choice(key: str, b: dict) -> str | None:
    found = _CHOICE.match(key)
    if not found or key in b:
        return None
    return next((k for k in b if k.startswith(found.group(1)) and _CHOICE.match(k)), None)


def _atomic(value: dict) -> bool:
    """A CodeableConcept or Reference the practice changed is the bridge's whole: the sender's
    other codings (or display) described what it was before."""
    return "coding" in value or "reference" in value


def _merge_list(o: list, b: list, n: list) -> list:
    b_to_o = {j: i for i, j in align(o, b).items()}
    n_to_b = _pair_changed(b, n)
    used_b = set(n_to_b.values())
    merged_at: dict[int, Any] = {}
    added = []
    for k, item in enumerate(n):
        j = n_to_b.get(k)
        i = b_to_o.get(j) if j is not None else None
        if i is None:
            if j is None or b[j] != item:
                added.append(copy.deepcopy(item))
        else:
            merged_at[i] = merge(o[i], b[j], item)
    out = []
    for i, item in enumerate(o):
        j = next((jj for jj, ii in b_to_o.items() if ii == i), None)
        if j is None:
            out.append(copy.deepcopy(item))  # the bridge has no place for it: kept
        elif i in merged_at:
            out.append(merged_at[i])
        elif j not in used_b:
            continue  # the practice removed it
    return out + added


def _pair_changed(b: list, n: list) -> dict[int, int]:
    """Which baseline item each current item is: equal items first, then by position."""
    pairs: dict[int, int] = {}
    free = set(range(len(b)))
    for k, item in enumerate(n):
        j = next((j for j in sorted(free) if b[j] == item), None)
        if j is not None:
            pairs[k] = j
            free.discard(j)
    if len(b) == len(n):
        for k in range(len(n)):
            if k not in pairs and k in free:
                pairs[k] = k
                free.discard(k)
    return pairs


def align(o: list, b: list) -> dict[int, int]:
    """original index -> baseline index, by the most leaves in common (position breaks ties);
    an item with nothing in common with any other is not aligned."""
    leaves_o = [_leaves(x) for x in o]
    leaves_b = [_leaves(x) for x in b]
    scored = sorted(((len(lo & lb), -abs(i - j), i, j) for i, lo in enumerate(leaves_o)
                     for j, lb in enumerate(leaves_b) if lo & lb), reverse=True)
    out: dict[int, int] = {}
    taken: set[int] = set()
    for _, _, i, j in scored:
        if i not in out and j not in taken:
            out[i] = j
            taken.add(j)
    if len(o) == len(b):  # lists of the same length: what is left pairs up by position
        for i in range(len(o)):
            if i not in out and i not in taken:
                out[i] = i
                taken.add(i)
    return out


def _leaves(value: Any, path: tuple = ()) -> set:
    if isinstance(value, dict):
        return {leaf for k, v in value.items() for leaf in _leaves(v, path + (k,))}
    if isinstance(value, list):
        return {leaf for i, v in enumerate(value) for leaf in _leaves(v, path + (i,))}
    return {(path, str(value))}
