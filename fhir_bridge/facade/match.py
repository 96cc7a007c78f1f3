"""Does a resource match one search criterion? Values are read from the parameter's element
paths and compared by the parameter's type, following the FHIR R4 search rules for token,
reference, date and string parameters."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator

from .parameters import SearchParameter

UTC = dt.timezone.utc
MIN = dt.datetime.min.replace(tzinfo=UTC)
MAX = dt.datetime.max.replace(tzinfo=UTC)

_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$")
#: A dateTime whose offset's "+" arrived as a space (an unencoded "+" in a query string).
_SPACED_OFFSET = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) "
                            r"(\d{2}:\d{2})$")
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
#: ``ap``: the value's range widened by this share of the time between it and now (FHIR R4
#: search.html#prefix leaves the amount to the server; 10% is what it suggests).
APPROXIMATE = 0.1
_STEP = re.compile(r"([A-Za-z_]+)(?:\(([^)]*)\))?(?:\.|$)")


@dataclass(frozen=True)
class Criterion:
    """One parsed parameter: values are ORed; several criteria on a search are ANDed."""

    param: SearchParameter
    modifier: str | None
    values: tuple[Any, ...]  # token: (system|None, code); reference: (type|None, id);
    #                          date: (prefix, lo, hi); string: folded text


# -- reading values --------------------------------------------------------------------------

@lru_cache(maxsize=None)
def steps(path: str) -> tuple[tuple[str, str | None], ...]:
    """``extension(http://x/y).valueDateTime`` -> (("extension", "http://x/y"),
    ("valueDateTime", None)): a step with a url in brackets keeps the items with that url."""
    out, at = [], 0
    while at < len(path):
        found = _STEP.match(path, at)
        if found is None:
            raise ValueError(f"bad search path {path!r}")
        out.append((found.group(1), found.group(2)))
        at = found.end()
    return tuple(out)


def values(resource: dict, path: str) -> Iterator[Any]:
    """Every value at a dotted path, walking into lists at each step."""
    nodes: list[Any] = [resource]
    for step, url in steps(path):
        nxt: list[Any] = []
        for node in nodes:
            if isinstance(node, dict) and step in node:
                value = node[step]
                nxt.extend(value if isinstance(value, list) else [value])
        if url is not None:
            nxt = [n for n in nxt if isinstance(n, dict) and n.get("url") == url]
        nodes = nxt
    yield from nodes


def param_values(resource: dict, param: SearchParameter) -> Iterator[Any]:
    for path in param.paths:
        yield from values(resource, path)


# -- dates -------------------------------------------------------------------------------------

def date_range(text: str) -> tuple[dt.datetime, dt.datetime] | None:
    """[lo, hi) of a FHIR date, dateTime or instant, by its precision; no offset means UTC."""
    match = _DATE.match(text or "")
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        tz = UTC
        if zone and zone != "Z":  # dt.timezone refuses offsets of a day or more (+99:99)
            sign = 1 if zone[0] == "+" else -1
            tz = dt.timezone(sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        if month is None:
            lo = dt.datetime(int(year), 1, 1, tzinfo=tz)
            return lo, lo.replace(year=lo.year + 1) if lo.year < 9999 else MAX
        if day is None:
            lo = dt.datetime(int(year), int(month), 1, tzinfo=tz)
            hi = (lo.replace(year=lo.year + 1, month=1) if lo.month == 12
                  else lo.replace(month=lo.month + 1))
            return lo, hi
        if hour is None:
            lo = dt.datetime(int(year), int(month), int(day), tzinfo=tz)
            return lo, lo + dt.timedelta(days=1)
        lo = dt.datetime(int(year), int(month), int(day), int(hour), int(minute),
                         int(second or 0), int(float(fraction or 0) * 1_000_000), tzinfo=tz)
        step = (dt.timedelta(minutes=1) if second is None
                else dt.timedelta(seconds=1) if fraction is None else dt.timedelta(microseconds=1))
        return lo, lo + step
    except (ValueError, OverflowError):
        return None


def restore_plus(text: str) -> str:
    """A date parameter as sent: ``2025-01-01T00:00:00 05:00`` is how a raw ``+05:00``
    arrives (form decoding reads ``+`` as a space), so read the space back as ``+``."""
    return _SPACED_OFFSET.sub(r"\1+\2", text)


def value_range(value: Any) -> tuple[dt.datetime, dt.datetime] | None:
    if isinstance(value, str):
        return date_range(value)
    if isinstance(value, dict) and ("start" in value or "end" in value):  # Period
        start = date_range(value["start"]) if value.get("start") else None
        end = date_range(value["end"]) if value.get("end") else None
        return (start[0] if start else MIN), (end[1] if end else MAX)
    return None


def date_matches(prefix: str, lo: dt.datetime, hi: dt.datetime,
                 target: tuple[dt.datetime, dt.datetime]) -> bool:
    t_lo, t_hi = target
    if prefix == "eq":
        return lo <= t_lo and t_hi <= hi
    if prefix == "ne":
        return not (lo <= t_lo and t_hi <= hi)
    if prefix == "gt":
        return t_hi > hi
    if prefix == "lt":
        return t_lo < lo
    if prefix == "ge":
        return t_hi > lo  # some of the target lies at or after the start of the value
    if prefix == "le":
        return t_lo < hi  # some of the target lies before the end of the value
    if prefix == "sa":
        return t_lo >= hi
    if prefix == "eb":
        return t_hi <= lo
    if prefix == "ap":
        return _overlaps(approximate(lo, hi, dt.datetime.now(UTC)), target)
    raise ValueError(prefix)


def approximate(lo: dt.datetime, hi: dt.datetime,
                now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[lo, hi) widened on both sides by APPROXIMATE of the time from it to now."""
    gap = max(abs(now - lo), abs(now - hi)) * APPROXIMATE
    try:
        return lo - gap, hi + gap
    except OverflowError:
        return MIN, MAX


def _overlaps(value: tuple[dt.datetime, dt.datetime],
              target: tuple[dt.datetime, dt.datetime]) -> bool:
    return value[0] < target[1] and target[0] < value[1]


# -- tokens, references, strings ---------------------------------------------------------------

def codings(value: Any) -> Iterator[tuple[str | None, str | None, str | None]]:
    """(system, code, text) of a code, Coding, CodeableConcept or Identifier."""
    if isinstance(value, bool):
        yield None, "true" if value else "false", None
    elif isinstance(value, str):
        yield None, value, None
    elif isinstance(value, dict):
        if "coding" in value or "text" in value and "value" not in value:
            for coding in value.get("coding", []):
                yield coding.get("system"), coding.get("code"), value.get("text")
            if not value.get("coding"):
                yield None, None, value.get("text")
        elif "value" in value:  # Identifier
            yield value.get("system"), value.get("value"), None
        else:  # Coding
            yield value.get("system"), value.get("code"), value.get("display")


def _token_matches(system: str | None, code: str | None, value: Any) -> bool:
    for v_system, v_code, _ in codings(value):
        if code is not None and v_code != code:
            continue
        if system is None:
            return True
        if system == "" and not v_system:
            return True
        if system and v_system == system:
            return True
    return False


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a string, as FHIR string search compares."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):  # HumanName and friends: every part, and the whole text
        for key in ("text", "family", "given", "prefix", "suffix"):
            part = value.get(key)
            for item in part if isinstance(part, list) else [part]:
                if isinstance(item, str):
                    yield item


def reference_key(reference: str) -> tuple[str | None, str] | None:
    """'Patient/pat-1' -> ('Patient', 'pat-1'); 'pat-1' -> (None, 'pat-1')."""
    if not reference or "?" in reference:
        return None
    parts = reference.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":  # a versioned reference
        parts = parts[:-2]
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2], parts[-1]
    if len(parts) == 1:
        return None, parts[0]
    return None


# -- one criterion -----------------------------------------------------------------------------

def matches(resource: dict, criterion: Criterion) -> bool:
    param, modifier = criterion.param, criterion.modifier
    found = list(param_values(resource, param))
    if modifier == "missing":
        return (not found) == criterion.values[0]
    if param.type == "token":
        if modifier == "text":
            return any(text and fold(text).startswith(fold(code))
                       for _, code in criterion.values for value in found
                       for _, _, text in codings(value))
        hit = any(_token_matches(system, code, value)
                  for system, code in criterion.values for value in found)
        return not hit if modifier == "not" else hit
    if param.type == "reference":
        keys = [reference_key(v.get("reference", "")) for v in found if isinstance(v, dict)]
        return any(key is not None and key[1] == rid and (rtype is None or key[0] == rtype)
                   for rtype, rid in criterion.values for key in keys)
    if param.type == "date":
        ranges = [r for r in (value_range(v) for v in found) if r is not None]
        return any(date_matches(prefix, lo, hi, r)
                   for prefix, lo, hi in criterion.values for r in ranges)
    if param.type == "uri":
        uris = {u for v in found if isinstance(v, str) for u in (v, v.split("|", 1)[0])}
        version = resource.get("version")
        if "url" in param.paths and isinstance(version, str):  # a canonical resource's own
            uris |= {f"{v}|{version}" for v in found if isinstance(v, str)}  # url|version
        return any(u in uris for u in criterion.values)
    if param.type == "string":
        texts = [fold(s) for v in found for s in strings(v)]
        if modifier == "exact":
            return any(s in (t for v in found for t in strings(v)) for s in criterion.values)
        if modifier == "contains":
            return any(s in t for s in criterion.values for t in texts)
        return any(t.startswith(s) for s in criterion.values for t in texts)
    return False
