"""One search parameter's value as written (``ge2024-01``, ``http://loinc.org|1234-5``,
``Patient/pat-1``, ``a\\,b``) into a Criterion, refusing what the parameter cannot take."""

from __future__ import annotations

import re

from .match import DATE_PREFIXES, Criterion, date_range, fold, restore_plus
from .parameters import SearchParameter

_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class Refused(Exception):
    """A parameter refused: the message names what is wrong, ``code`` is the issue code."""

    def __init__(self, message: str, code: str = "invalid"):
        super().__init__(message)
        self.code = code


def split_values(value: str) -> list[str]:
    """Comma-separated alternatives; '\\,' is a literal comma."""
    out, current, escaped = [], [], False
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            out.append("".join(current))
            current = []
        else:
            current.append(char)
    out.append("".join(current))
    return out


def criterion(param: SearchParameter, modifier: str | None, value: str) -> Criterion:
    if modifier == "missing":
        if value not in ("true", "false"):
            raise Refused(":missing takes true or false")
        return Criterion(param, modifier, (value == "true",))
    alternatives = split_values(value)
    if any(a == "" for a in alternatives):
        raise Refused("has an empty value")
    if param.type == "token":
        if modifier not in (None, "not", "text"):
            raise Refused(f"token parameters take :not, :text or :missing, not :{modifier}",
                           "not-supported")
        tokens = tuple(_token(a) for a in alternatives)
        unknown = [code for _, code in tokens
                   if param.values and code is not None and code not in param.values]
        if unknown and modifier != "text":
            raise Refused(f"must be one of {', '.join(param.values)}, not {unknown[0]!r}")
        return Criterion(param, modifier, tokens)
    if param.type == "reference":
        type_modifier = modifier
        if modifier is not None and (not modifier[:1].isupper()
                                     or (param.targets and modifier not in param.targets)):
            raise Refused(f":{modifier} is not a resource type this parameter points at",
                           "not-supported")
        return Criterion(param, None, tuple(_reference(param, type_modifier, a)
                                            for a in alternatives))
    if param.type == "uri":  # exact, as FHIR R4 compares uri parameters (a canonical
        if modifier is not None:  # matches with or without its |version)
            raise Refused(f"uri parameters take no :{modifier}", "not-supported")
        return Criterion(param, None, tuple(_uri(param, a) for a in alternatives))
    if param.type == "date":
        if modifier is not None:
            raise Refused(f"date parameters take no :{modifier}", "not-supported")
        return Criterion(param, None, tuple(_date(a) for a in alternatives))
    if modifier not in (None, "exact", "contains"):
        raise Refused(f"string parameters take :exact or :contains, not :{modifier}",
                       "not-supported")
    return Criterion(param, modifier,
                     tuple(a if modifier == "exact" else fold(a) for a in alternatives))


def _uri(param: SearchParameter, value: str) -> str:
    """A relative uri (no scheme) read against the parameter's base, if it has one."""
    if param.relative_to and ":" not in value:
        return param.relative_to + value
    return value


def _token(value: str) -> tuple[str | None, str | None]:
    if "|" not in value:
        return None, value
    system, code = value.split("|", 1)
    return system, (code or None)


def _reference(param: SearchParameter, type_modifier: str | None,
               value: str) -> tuple[str | None, str]:
    parts = value.rstrip("/").split("/")
    if len(parts) >= 2:
        rtype, rid = parts[-2], parts[-1]
        if not rtype[:1].isupper():
            raise Refused(f"{value!r} is not Type/id or an id")
        if param.targets and rtype not in param.targets:
            raise Refused(f"points at {', '.join(param.targets)}, not {rtype}")
        if type_modifier and rtype != type_modifier:
            raise Refused(f"{value!r} is not a {type_modifier}")
    else:
        rid = parts[0]
        rtype = type_modifier or (param.targets[0] if len(param.targets) == 1 else None)
    if not _ID.match(rid):
        raise Refused(f"{rid!r} is not a valid id")
    return rtype, rid


def _date(value: str):
    prefix = value[:2] if value[:2] in DATE_PREFIXES else "eq"
    text = restore_plus(value[2:] if value[:2] in DATE_PREFIXES else value)
    bounds = date_range(text)
    if bounds is None:
        raise Refused(f"{value!r} is not a FHIR date, dateTime or instant")
    return prefix, bounds[0], bounds[1]
