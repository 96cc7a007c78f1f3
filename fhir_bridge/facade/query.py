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
from .criteria import Refused, criterion
from .elements import SUMMARY_MODES, Subset, parse_elements
from .match import Criterion, matches
from .parameters import ResourceSearch, SearchParameter
from .sorting import SORTABLE_TYPES, SQL_KEYS

DEFAULT_COUNT = 50
MAX_COUNT = 500  # a larger _count is capped to this (the Bundle's links say so)
MAX_OFFSET = 100_000
TOTALS = ("none", "estimate", "accurate")  # the total is always counted exactly
TOTAL_METHODS = ("count", "estimate")


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


@dataclass(frozen=True)
class Chain:
    """``patient.identifier=X`` / ``subject:Patient.name=Y``: the reference parameter, the
    type it must point at, and the criterion on that type (one level deep)."""

    name: str
    param: SearchParameter
    target_type: str
    inner: Criterion


@dataclass(frozen=True)
class Has:
    """``_has:Observation:patient:code=X``: resources that an Observation matching the inner
    criterion points at through its ``patient`` parameter."""

    name: str
    source_type: str
    param: SearchParameter
    inner: Criterion


@dataclass
class Search:
    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    chains: list[Chain] = field(default_factory=list)
    has: list[Has] = field(default_factory=list)
    compartment: str | None = None  # Patient/{id}/{type}: the Patient's FHIR id
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


def parse_search(resource_type: str, args: Iterable[tuple[str, str]],
                 spec: ResourceSearch | None = None) -> Search:
    """``spec``: the parameters to read the query by (a catalog type's); the store's by
    default."""
    spec = spec or searchable(resource_type)
    search = Search(resource_type)
    issues: list[Issue] = []
    for name, value in args:
        try:
            _apply(spec, search, name, value)
        except Refused as exc:  # a parameter without a name is "(query)", as api.screen says
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
    if search.chains or search.has:
        raise BadRequest("criteria cannot chain", [Issue(
            "criteria", "chained parameters and _has are served by search only",
            "not-supported")])
    return search


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
            raise Refused("names a key twice")
    elif spec.listed and (base in ("_include", "_revinclude", "_has") or "." in name):
        raise Refused(f"{spec.resource_type} is not searched in the record store: its "
                       "searches take no _include, _revinclude, _has or chains",
                       "not-supported")
    elif base in ("_include", "_revinclude"):
        if modifier not in ("", "iterate"):
            raise Refused(f"unsupported modifier :{modifier}", "not-supported")
        include = _include(value, modifier == "iterate", reverse=base == "_revinclude",
                           searched=spec.resource_type)
        (search.revincludes if base == "_revinclude" else search.includes).append(include)
    elif base == "_summary":
        if value not in SUMMARY_MODES:
            raise Refused(f"_summary is one of {', '.join(SUMMARY_MODES)}")
        search.summary_count = value == "count"
        search.subset = Subset(summary=value if value in ("true", "text", "data") else None,
                               elements=search.subset.elements)
    elif base == "_elements":
        try:
            named = parse_elements(value, spec.resource_type,
                                   lambda t: parameters.for_type(t) is not None)
        except ValueError as exc:
            raise Refused(str(exc)) from None
        search.subset = Subset(search.subset.summary, (*search.subset.elements, *named))
    elif base == "_total":
        if value not in TOTALS:
            raise Refused(f"_total is {', '.join(TOTALS)}")
    elif base == "_totalMethod":  # not FHIR: Aidbox's, sent by fhirpy's count()
        if value not in TOTAL_METHODS:
            raise Refused(f"_totalMethod is {' or '.join(TOTAL_METHODS)} (the total is "
                           "always exact; FHIR's own parameter is _total)")
    elif base == "_pretty":
        if value not in negotiate.PRETTY:
            raise Refused("must be true or false")
    elif base == "_format":
        if negotiate.from_format(value) is None:
            raise Refused("only JSON is served", "not-supported")
        return
    elif base == "_has":
        search.has.append(_has(spec, name, modifier, value))
    elif "." in name:
        search.chains.append(_chain(spec, name, value))
    elif base.startswith("_") and base not in spec.params:
        raise Refused(f"{base} is not supported", "not-supported")
    else:
        param = spec.params.get(base)
        if param is None:
            raise Refused(f"{spec.resource_type} has no search parameter {base!r}",
                           "not-supported")
        search.criteria.append(criterion(param, modifier or None, value))
    search.canonical.append((name, value))


def page_args(count: str | None, offset: str | None) -> tuple[int, int, list[Issue]]:
    """``_count`` (capped at MAX_COUNT) and ``_offset`` for history, as search reads them."""
    issues, out = [], []
    for name, value, default, high in (("_count", count, DEFAULT_COUNT, None),
                                       ("_offset", offset, 0, MAX_OFFSET)):
        try:
            out.append(default if value is None else _int(value, 0, high))
        except Refused as exc:
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
        raise Refused(f"must be a whole number from {low} to {high}" if high is not None
                       else f"must be a whole number, at least {low}")
    return number


def sort_keys(spec: ResourceSearch) -> list[str]:
    """What a type can be sorted by: _id, _lastUpdated (where declared) and its date, token
    and string parameters."""
    return [*(key for key in SQL_KEYS if key in spec.params),
            *sorted(n for n, p in spec.params.items()
                    if p.type in SORTABLE_TYPES and n not in SQL_KEYS)]


def _sort_key(spec: ResourceSearch, part: str) -> tuple[str, bool]:
    descending = part.startswith("-")
    key = part[1:] if descending else part
    if key not in sort_keys(spec):
        raise Refused(f"{spec.resource_type} can be sorted by {', '.join(sort_keys(spec))}",
                       "not-supported")
    return key, descending


def _include(value: str, iterate: bool, reverse: bool, searched: str) -> Include:
    parts = value.split(":")
    if len(parts) not in (2, 3):
        raise Refused("is written Type:parameter or Type:parameter:Target")
    source = parameters.for_type(parts[0])
    if source is None:
        raise Refused(f"{parts[0]} is not a supported resource type", "not-supported")
    if parts[1] == "*":
        raise Refused("wildcard includes are not supported; name the parameter",
                       "not-supported")
    param = source.reference_params().get(parts[1])
    if param is None:
        raise Refused(f"{parts[0]} has no reference parameter {parts[1]!r}", "not-supported")
    target = parts[2] if len(parts) == 3 else None
    if target is not None and param.targets and target not in param.targets:
        raise Refused(f"{parts[0]}:{parts[1]} does not point at {target}")
    if not iterate and not reverse and parts[0] != searched:
        raise Refused(f"_include must start with {searched} (or use _include:iterate)")
    return Include(parts[0], param, target, iterate)


def _linked_param(spec: ResourceSearch, name: str) -> SearchParameter:
    param = spec.params.get(name)
    if param is None:
        raise Refused(f"{spec.resource_type} has no search parameter {name!r}",
                       "not-supported")
    if name.startswith("_") and name != "_id":
        raise Refused(f"{name} cannot be chained", "not-supported")
    return param


def _chain(spec: ResourceSearch, name: str, value: str) -> Chain:
    """``ref[:Type].param[:modifier]``, one level deep."""
    head, _, rest = name.partition(".")
    ref_name, _, type_modifier = head.partition(":")
    ref = spec.params.get(ref_name)
    if ref is None or ref.type != "reference":
        raise Refused(f"{ref_name!r} is not a reference parameter of {spec.resource_type}; "
                       "only references chain", "not-supported")
    target = type_modifier or (ref.targets[0] if len(ref.targets) == 1 else None)
    if target is None:
        raise Refused(f"{ref_name} points at {', '.join(ref.targets) or 'any type'}: name "
                       f"one, as {ref_name}:Type.parameter")
    if ref.targets and target not in ref.targets:
        raise Refused(f"{ref_name} does not point at {target}")
    target_spec = parameters.for_type(target)
    if target_spec is None:
        raise Refused(f"{target} is not served here", "not-supported")
    inner_name, _, inner_modifier = rest.partition(":")
    if "." in rest or inner_name == "_has":
        raise Refused("chains go one level deep (Type?reference.parameter=value)",
                       "not-supported")
    inner = criterion(_linked_param(target_spec, inner_name), inner_modifier or None, value)
    return Chain(name, ref, target, inner)


def _has(spec: ResourceSearch, name: str, modifier: str, value: str) -> Has:
    """``_has:Source:reference:parameter[:modifier]``, one level deep."""
    parts = modifier.split(":")
    if len(parts) not in (3, 4):
        raise Refused("is written _has:Type:reference:parameter")
    source_name, ref_name, inner_name = parts[:3]
    if inner_name == "_has" or "." in inner_name:
        raise Refused("_has goes one level deep", "not-supported")
    source = parameters.for_type(source_name)
    if source is None:
        raise Refused(f"{source_name} is not a supported resource type", "not-supported")
    ref = source.reference_params().get(ref_name)
    if ref is None:
        raise Refused(f"{source_name} has no reference parameter {ref_name!r}",
                       "not-supported")
    if ref.targets and spec.resource_type not in ref.targets:
        raise Refused(f"{source_name}:{ref_name} does not point at {spec.resource_type}")
    inner = criterion(_linked_param(source, inner_name), parts[3] if len(parts) == 4 else None,
                       value)
    return Has(name, source_name, ref, inner)
