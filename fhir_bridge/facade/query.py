"""Parse a FHIR search query (``CarePlan?patient=pat-1&_include=CarePlan:goal``) into a Search.

Anything the API does not support is refused with 400 and an OperationOutcome naming the
parameter (strict handling): a silently ignored filter would return more data than asked for,
which for behavioral-health records is a disclosure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable
from urllib.parse import parse_qsl

from ..errors import BadRequest, Issue
from . import negotiate, parameters
from .elements import SUMMARY_MODES, Subset, parse_elements
from .match import DATE_PREFIXES, Criterion, date_range, fold, matches, restore_plus
from .parameters import ResourceSearch, SearchParameter
from .sorting import SORTABLE_TYPES, SQL_KEYS

DEFAULT_COUNT = 50
MAX_COUNT = 500  # a larger _count is capped to this (the Bundle's links say so)
MAX_OFFSET = 100_000
TOTALS = ("none", "estimate", "accurate")  # the total is always counted exactly
TOTAL_METHODS = ("count", "estimate")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class Include:
    """``_include=Source:param[:Target]`` or ``_revinclude=Source:param[:Target]``."""

    source_type: str
    param: SearchParameter
    target_type: str | None
    iterate: bool = False

    def __str__(self) -> str:
        text = f"{self.source_type}:{self.param.name}"
        return f"{text}:{self.target_type}" if self.target_type else text


@dataclass
class Search:
    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (key, descending)
    summary_count: bool = False
    subset: Subset = field(default_factory=Subset)  # _summary=true|text|data, _elements
    # The query as the client wrote it, minus paging: paging links are built from it.
    canonical: list[tuple[str, str]] = field(default_factory=list)

    def matches(self, resource: dict) -> bool:
        """Whether a resource meets every criterion (used by search and by subscriptions)."""
        return (resource.get("resourceType") == self.resource_type
                and all(matches(resource, c) for c in self.criteria))


def searchable(resource_type: str) -> ResourceSearch:
    spec = parameters.for_type(resource_type)
    if spec is None:
        raise BadRequest(f"{resource_type} cannot be searched here",
                         [Issue("(type)", f"{resource_type} is not a supported resource type",
                                "not-supported")])
    return spec


def parse_search(resource_type: str, args: Iterable[tuple[str, str]]) -> Search:
    spec = searchable(resource_type)
    search = Search(resource_type)
    issues: list[Issue] = []
    for name, value in args:
        try:
            _apply(spec, search, name, value)
        except _Refused as exc:  # a parameter without a name is "(query)", as api.screen says
            issues.append(Issue(name or "(query)", str(exc), exc.code))
    if search.subset.summary and search.subset.elements:
        issues.append(Issue("_elements", "use _summary or _elements, not both"))
    if issues:
        raise BadRequest("the search cannot be run as written", issues)
    return search


def parse_criteria(criteria: str) -> Search:
    """``MedicationRequest?patient=pat-1&status=active`` (a Subscription's criteria)."""
    resource_type, _, query = criteria.partition("?")
    if not re.fullmatch(r"[A-Z][A-Za-z]+", resource_type or ""):
        raise BadRequest("criteria must be Type?query", [Issue("criteria", "no resource type")])
    search = parse_search(resource_type, parse_qsl(query, keep_blank_values=True))
    if (search.includes or search.revincludes or search.sort or search.subset
            or search.summary_count):
        raise BadRequest("criteria take filters only", [Issue(
            "criteria", "_include, _revinclude, _sort, _summary and _elements do not apply")])
    return search


class _Refused(Exception):
    def __init__(self, message: str, code: str = "invalid"):
        super().__init__(message)
        self.code = code


def _apply(spec: ResourceSearch, search: Search, name: str, value: str) -> None:
    base, _, modifier = name.partition(":")
    if base == "_count":
        search.count = min(_int(value, 0, None), MAX_COUNT)
        return
    if base == "_offset":
        search.offset = _int(value, 0, MAX_OFFSET)
        return
    if base == "_sort":
        search.sort = [_sort_key(spec, part) for part in value.split(",")]
        if len({key for key, _ in search.sort}) < len(search.sort):
            raise _Refused("names a key twice")
    elif base in ("_include", "_revinclude"):
        if modifier not in ("", "iterate"):
            raise _Refused(f"unsupported modifier :{modifier}", "not-supported")
        include = _include(value, modifier == "iterate", reverse=base == "_revinclude",
                           searched=spec.resource_type)
        (search.revincludes if base == "_revinclude" else search.includes).append(include)
    elif base == "_summary":
        if value not in SUMMARY_MODES:
            raise _Refused(f"_summary is one of {', '.join(SUMMARY_MODES)}")
        search.summary_count = value == "count"
        search.subset = Subset(summary=value if value in ("true", "text", "data") else None,
                               elements=search.subset.elements)
    elif base == "_elements":
        try:
            named = parse_elements(value, spec.resource_type,
                                   lambda t: parameters.for_type(t) is not None)
        except ValueError as exc:
            raise _Refused(str(exc)) from None
        search.subset = Subset(search.subset.summary, (*search.subset.elements, *named))
    elif base == "_total":
        if value not in TOTALS:
            raise _Refused(f"_total is {', '.join(TOTALS)}")
    elif base == "_totalMethod":  # not FHIR: Aidbox's, sent by fhirpy's count()
        if value not in TOTAL_METHODS:
            raise _Refused(f"_totalMethod is {' or '.join(TOTAL_METHODS)} (the total is "
                           "always exact; FHIR's own parameter is _total)")
    elif base == "_pretty":
        if value not in negotiate.PRETTY:
            raise _Refused("must be true or false")
    elif base == "_format":
        if negotiate.from_format(value) is None:
            raise _Refused("only JSON is served", "not-supported")
        return
    elif base.startswith("_") and base not in spec.params:
        raise _Refused(f"{base} is not supported", "not-supported")
    elif "." in base:
        raise _Refused("chained parameters are not supported", "not-supported")
    else:
        param = spec.params.get(base)
        if param is None:
            raise _Refused(f"{spec.resource_type} has no search parameter {base!r}",
                           "not-supported")
        search.criteria.append(_criterion(param, modifier or None, value))
    search.canonical.append((name, value))


def page_args(count: str | None, offset: str | None) -> tuple[int, int, list[Issue]]:
    """``_count`` (capped at MAX_COUNT) and ``_offset`` for history, as search reads them."""
    issues, out = [], []
    for name, value, default, high in (("_count", count, DEFAULT_COUNT, None),
                                       ("_offset", offset, 0, MAX_OFFSET)):
        try:
            out.append(default if value is None else _int(value, 0, high))
        except _Refused as exc:
            issues.append(Issue(name, str(exc)))
            out.append(default)
    return min(out[0], MAX_COUNT), out[1], issues


def _int(value: str, low: int, high: int | None) -> int:
    """A whole number from low to high; with no high, any size (a huge one is read as 10**18:
    int() refuses strings past 4300 digits, and a cap applies anyway)."""
    if not (value.isascii() and value.isdigit()):
        number = None
    else:
        number = int(value) if len(value) <= 18 else 10**18
    if number is None or number < low or (high is not None and number > high):
        raise _Refused(f"must be a whole number from {low} to {high}" if high is not None
                       else f"must be a whole number, at least {low}")
    return number


def sort_keys(spec: ResourceSearch) -> list[str]:
    """What a type can be sorted by: _id, _lastUpdated and its date, token and string
    parameters."""
    return [*SQL_KEYS, *sorted(n for n, p in spec.params.items()
                               if p.type in SORTABLE_TYPES and n not in SQL_KEYS)]


def _sort_key(spec: ResourceSearch, part: str) -> tuple[str, bool]:
    descending = part.startswith("-")
    key = part[1:] if descending else part
    if key not in sort_keys(spec):
        raise _Refused(f"{spec.resource_type} can be sorted by {', '.join(sort_keys(spec))}",
                       "not-supported")
    return key, descending


def _include(value: str, iterate: bool, reverse: bool, searched: str) -> Include:
    parts = value.split(":")
    if len(parts) not in (2, 3):
        raise _Refused("is written Type:parameter or Type:parameter:Target")
    source = parameters.for_type(parts[0])
    if source is None:
        raise _Refused(f"{parts[0]} is not a supported resource type", "not-supported")
    if parts[1] == "*":
        raise _Refused("wildcard includes are not supported; name the parameter",
                       "not-supported")
    param = source.reference_params().get(parts[1])
    if param is None:
        raise _Refused(f"{parts[0]} has no reference parameter {parts[1]!r}", "not-supported")
    target = parts[2] if len(parts) == 3 else None
    if target is not None and param.targets and target not in param.targets:
        raise _Refused(f"{parts[0]}:{parts[1]} does not point at {target}")
    if not iterate and not reverse and parts[0] != searched:
        raise _Refused(f"_include must start with {searched} (or use _include:iterate)")
    return Include(parts[0], param, target, iterate)


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


def _criterion(param: SearchParameter, modifier: str | None, value: str) -> Criterion:
    if modifier == "missing":
        if value not in ("true", "false"):
            raise _Refused(":missing takes true or false")
        return Criterion(param, modifier, (value == "true",))
    alternatives = split_values(value)
    if any(a == "" for a in alternatives):
        raise _Refused("has an empty value")
    if param.type == "token":
        if modifier not in (None, "not", "text"):
            raise _Refused(f"token parameters take :not, :text or :missing, not :{modifier}",
                           "not-supported")
        return Criterion(param, modifier, tuple(_token(a) for a in alternatives))
    if param.type == "reference":
        type_modifier = modifier
        if modifier is not None and (not modifier[:1].isupper()
                                     or (param.targets and modifier not in param.targets)):
            raise _Refused(f":{modifier} is not a resource type this parameter points at",
                           "not-supported")
        return Criterion(param, None, tuple(_reference(param, type_modifier, a)
                                            for a in alternatives))
    if param.type == "date":
        if modifier is not None:
            raise _Refused(f"date parameters take no :{modifier}", "not-supported")
        return Criterion(param, None, tuple(_date(a) for a in alternatives))
    if modifier not in (None, "exact", "contains"):
        raise _Refused(f"string parameters take :exact or :contains, not :{modifier}",
                       "not-supported")
    return Criterion(param, modifier,
                     tuple(a if modifier == "exact" else fold(a) for a in alternatives))


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
            raise _Refused(f"{value!r} is not Type/id or an id")
        if param.targets and rtype not in param.targets:
            raise _Refused(f"points at {', '.join(param.targets)}, not {rtype}")
        if type_modifier and rtype != type_modifier:
            raise _Refused(f"{value!r} is not a {type_modifier}")
    else:
        rid = parts[0]
        rtype = type_modifier or (param.targets[0] if len(param.targets) == 1 else None)
    if not _ID.match(rid):
        raise _Refused(f"{rid!r} is not a valid id")
    return rtype, rid


def _date(value: str):
    prefix = value[:2] if value[:2] in DATE_PREFIXES else "eq"
    text = restore_plus(value[2:] if value[:2] in DATE_PREFIXES else value)
    bounds = date_range(text)
    if bounds is None:
        raise _Refused(f"{value!r} is not a FHIR date, dateTime or instant")
    return prefix, bounds[0], bounds[1]
