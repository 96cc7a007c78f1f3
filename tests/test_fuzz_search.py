"""Fuzzing the FHIR search API (/fhir) with Hypothesis.

(a) ``parse_search`` on arbitrary (name, value) pairs either returns a Search or raises
    BadRequest, and a parsed Search matches (True or False, never an exception) against every
    golden FHIR resource of its type.
(b) ``GET /fhir/<type>?...`` with valid-looking and invalid queries for every type in
    mappings/search-parameters.yaml: never 5xx; 200 is a searchset Bundle of that type; 400 is
    an OperationOutcome whose issues each name a parameter that was sent; 406 only when a
    ``_format`` that is not JSON was sent; the store is unchanged apart from the audit log.
(c) Date search partitions: for any date d, ``date=ge d`` and ``date=lt d`` together return
    every Observation of a patient that has a date, and both return exactly those whose date
    range straddles the start of d (FHIR R4 search, "date": the value and the target are
    ranges given by their precision); likewise ``le d`` / ``gt d`` around the end of d.

Runs are bounded (``max_examples``), derandomized and without an example database, so CI runs
the same cases every time; the counts go to .run/fuzz-search-cases.json and the terminal
summary.
"""

from __future__ import annotations

import collections
import datetime as dt
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_bridge.errors import BadRequest
from fhir_bridge.facade import elements, parameters
from fhir_bridge.facade.match import DATE_PREFIXES, date_range
from fhir_bridge.facade.query import Search, parse_search

from .conftest import (FIXTURES, FULL_ACCESS, fixture_documents, module_app, read_json,
                       snapshot, token_for)
from .fuzz_support import counted

# A failing Hypothesis test reports through hypothesis.extra._patching, which imports libcst,
# whose typing_inspect touches the deprecated mypy_extensions.TypedDict: with
# filterwarnings=error that DeprecationWarning would replace the failure report.
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")

TYPES = sorted(parameters.load())
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: The store once the fixtures are loaded (not a fixture argument: Hypothesis would print it).
BASELINE: dict = {}
CASES: collections.Counter[str] = collections.Counter()
STATUSES: collections.Counter[int] = collections.Counter()

# Module-scoped fixtures only; the one function-scoped fixture these tests get is conftest's
# autouse ``dev_secret`` (an environment variable, the same for every example).
FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


# -- strategies ---------------------------------------------------------------------------------

CONTROL = ["_count", "_offset", "_sort", "_include", "_include:iterate", "_revinclude",
           "_revinclude:iterate", "_summary", "_total", "_format", "_elements", "_has",
           "_id", "_lastUpdated", "_include:nonsense", "_pretty", "_totalMethod"]
MODIFIERS = ["", ":missing", ":not", ":text", ":exact", ":contains", ":Patient",
             ":Practitioner", ":above", ":below", ":iterate", ":", "::", ":patient"]

# Text as a client might send it: any character but surrogates (an HTTP client cannot encode
# those); the parser alone also gets surrogates.
http_text = st.text(st.characters(codec="utf-8"), max_size=30)
any_text = st.text(max_size=30)
digits = st.one_of(
    st.integers(min_value=-5, max_value=10**30).map(str),
    st.sampled_from(["0", "00", "1e3", "1.5", " 1", "+1", "0x10", "²", "٣", "１", "500",
                     "501", "100000", "100001", "-0", ""]))
separators = st.sampled_from(["|", ",", ":", "$", "\\,", "\\", "/", "||", ",,", "&", "=",
                              "%", "%2C", " "])
zones = st.sampled_from(["", "Z", "+00:00", "-05:00", "+05:30", "+14:00", "-12:00", "+99:99",
                         "-00:00"])
prefixes = st.sampled_from(list(DATE_PREFIXES) + ["", "", "", "EQ", "gx", "g", "ap"])


@st.composite
def fhir_dates(draw, lo=dt.datetime(1, 1, 1), hi=dt.datetime(9999, 12, 31, 23, 59, 59),
               zones=zones):
    """A FHIR date, dateTime or instant at any precision, sometimes with an offset."""
    when = draw(st.datetimes(min_value=lo, max_value=hi))
    precision = draw(st.sampled_from(["year", "month", "day", "minute", "second", "fraction"]))
    text = {"year": "%Y", "month": "%Y-%m", "day": "%Y-%m-%d", "minute": "%Y-%m-%dT%H:%M",
            "second": "%Y-%m-%dT%H:%M:%S", "fraction": "%Y-%m-%dT%H:%M:%S.%f"}[precision]
    out = f"{when.year:04d}" + when.strftime(text)[4:]
    if precision in ("minute", "second", "fraction"):
        out += draw(zones)
    return out


bad_dates = st.sampled_from(["yesterday", "2025-13-01", "2025-02-30", "2025-1-1", "20250101",
                             "2025-01-01T25:00", "2025-01-01T10:00:00+2", "0000", "99999",
                             "2025-01-01T10", "2025-01-01 10:00", "T10:00", "2025-06-31",
                             "9999-12-31T23:59:59.9999999-12:00"])
dates = st.builds(lambda p, d: p + d, prefixes, st.one_of(fhir_dates(), bad_dates))
tokens = st.builds(lambda s, sep, c: s + sep + c,
                   st.sampled_from(["", "http://loinc.org", "http://snomed.info/sct",
                                    "urn:fhir-bridge:id:patient", "x"]),
                   st.sampled_from(["|", "", "||"]),
                   st.sampled_from(["44261-6", "survey", "active", "final", "p01", "", "x|y"]))
references = st.builds(
    lambda base, rtype, rid: base + rtype + rid,
    st.sampled_from(["", "", "http://example.org/fhir/", "/", "fhir/"]),
    st.sampled_from(["", "Patient/", "Practitioner/", "patient/", "Observation/", "X/", "/"]),
    st.sampled_from(["pat-p01", "pat-p02", "rx-p01-rx1", "cp-p01-plan", "", "a b", "a" * 65,
                     "x/_history/1", "..", "pat-p01\n"]))
includes = st.builds(lambda a, b, c: ":".join(x for x in (a, b, c) if x is not None),
                     st.sampled_from(TYPES + ["Spaceship", "", "*"]),
                     st.sampled_from(["patient", "subject", "care-team", "goal", "*",
                                      "activity-reference", "participant", "focus", "nope",
                                      None]),
                     st.sampled_from([None, None, "Patient", "CareTeam", "Nope"]))
sorts = st.lists(st.sampled_from(["_lastUpdated", "-_lastUpdated", "_id", "-_id", "title",
                                  "", "-", "date", "-date", "status", "-code", "name",
                                  "-authoredon", "patient"]),
                 min_size=1, max_size=3).map(",".join)


def values(text):
    """Values of every kind, joined by separators now and then."""
    one = st.one_of(dates, tokens, references, includes, sorts, digits, text,
                    st.sampled_from(["true", "false", "count", "none", "estimate", "json",
                                     "xml", "application/fhir+json", "*", "text", "data",
                                     "status,code", "Patient.name", "-status", "resourceType",
                                     "application/fhir json"]))
    return st.one_of(one, st.lists(st.tuples(one, separators), min_size=1, max_size=4).map(
        lambda parts: "".join(v + s for v, s in parts)))


def names(rtype: str, text):
    spec = parameters.for_type(rtype)
    own = sorted(spec.params) if spec else ["patient", "date", "code"]
    return st.one_of(
        st.builds(lambda n, m: n + m, st.sampled_from(own), st.sampled_from(MODIFIERS)),
        st.sampled_from(CONTROL),
        st.builds(lambda n, m: n + m, st.sampled_from(own),
                  st.sampled_from([".name", ":x.y", ".identifier", ":Patient.name",
                                   ":Patient.family:exact", ".general-practitioner.name",
                                   ".name:contains", "._has:Goal:patient:status", "..name"])),
        st.builds(lambda t, r, n: f"_has:{t}:{r}:{n}", st.sampled_from(TYPES + ["Nope"]),
                  st.sampled_from(["patient", "subject", "participant", "x", ""]),
                  st.sampled_from(["code", "status", "_id", "_has", "name:exact", "x.y", ""])),
        text)


valid_zones = st.sampled_from(["", "Z", "+00:00", "-05:00", "+05:30", "-04:00"])
IDS = ["pat-p01", "pat-p02", "pat-p03", "pat-p06", "prac-dr-lindqvist", "rx-p01-rx1",
       "rx-p01-rx2", "cp-p01-plan", "ct-p01-team", "goal-p01-goal-remission", "cond-p01-dx1",
       "nope"]


@st.composite
def valid_pair(draw, rtype: str) -> tuple[str, str]:
    """A parameter this type has, with a value of the parameter's type."""
    spec = parameters.for_type(rtype)
    control = draw(st.integers(0, 4))
    if control == 0:
        which = draw(st.sampled_from(["_count", "_offset", "_sort", "_summary", "_total",
                                      "_include", "_revinclude", "_elements"]))
        refs = sorted(spec.reference_params())
        value = {"_count": st.integers(0, 2000).map(str),
                 "_offset": st.integers(0, 300).map(str),
                 "_sort": sorts,
                 "_summary": st.sampled_from(["count", "true", "text", "data", "false"]),
                 "_elements": st.lists(st.sampled_from(sorted(elements.element_names(rtype))),
                                       min_size=1, max_size=3).map(",".join),
                 "_total": st.sampled_from(["none", "estimate", "accurate"]),
                 "_include": st.sampled_from(refs or ["x"]).map(lambda r: f"{rtype}:{r}"),
                 "_revinclude": st.sampled_from(
                     [f"{t}:{n}" for t in TYPES for n in parameters.for_type(t).reference_params()
                      if rtype in parameters.for_type(t).params[n].targets])
                 if any(rtype in p.targets for t in TYPES
                        for p in parameters.for_type(t).params.values()) else st.just("x:y"),
                 }[which]
        return which, draw(value)
    name = draw(st.sampled_from(sorted(spec.params)))
    param = spec.params[name]
    if param.type == "date":
        prefix = draw(st.sampled_from(DATE_PREFIXES + ("",)))
        return name, prefix + draw(fhir_dates(lo=dt.datetime(2020, 1, 1),
                                              hi=dt.datetime(2027, 1, 1), zones=valid_zones))
    if param.type == "reference":
        target = draw(st.sampled_from(list(param.targets) or ["Patient"]))
        rid = draw(st.sampled_from(IDS))
        return name, draw(st.sampled_from([rid, f"{target}/{rid}"]))
    if param.type == "token":
        modifier = draw(st.sampled_from(["", "", ":not", ":missing"]))
        if modifier == ":missing":
            return name + modifier, draw(st.sampled_from(["true", "false"]))
        return name + modifier, draw(tokens.filter(lambda t: t and not t.endswith("|")
                                                   and "||" not in t))
    modifier = draw(st.sampled_from(["", ":exact", ":contains"]))
    return name + modifier, draw(st.text(st.characters(categories=["L"]), min_size=1,
                                         max_size=8))


@st.composite
def queries(draw, text=http_text, types=st.sampled_from(TYPES)):
    """Half of them built from what the type supports, half anything at all."""
    rtype = draw(types)
    if parameters.for_type(rtype) is not None and draw(st.booleans()):
        return rtype, draw(st.lists(valid_pair(rtype), max_size=4))
    pairs = draw(st.lists(st.tuples(names(rtype, text), values(text)), max_size=5))
    return rtype, pairs


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def store_app(tmp_path_factory):
    """The app holding all six fixture patients, shared by every example of this module."""
    documents = [read_json(path) for path in fixture_documents()]
    with module_app(tmp_path_factory, "fuzz-search", documents, full_access=True) as app:
        BASELINE["store"] = snapshot(app)
        yield app


@pytest.fixture(scope="module")
def client(store_app):
    """Full access, AuditEvent included (system/*.cruds leaves it out by design)."""
    client = store_app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token_for(
        store_app, *FULL_ACCESS, "system/AuditEvent.rs", ttl_seconds=3600)
    return client


@pytest.fixture(scope="module")
def golden() -> dict[str, list[dict]]:
    """The golden FHIR resources of the six fixture patients, by type."""
    out: dict[str, list[dict]] = collections.defaultdict(list)
    for path in sorted((FIXTURES / "fhir").glob("*.json")):
        bundle = read_json(path)
        for entry in bundle.get("entry", []):
            out[entry["resource"]["resourceType"]].append(entry["resource"])
    assert sum(map(len, out.values())) > 100
    return out


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    def describe(seconds, statuses):
        return (f"hypothesis on FHIR search: {sum(CASES.values())} cases in {seconds} s "
                f"({', '.join(f'{k} {v}' for k, v in sorted(CASES.items()))}), HTTP statuses "
                f"{statuses}",
                {"cases": sum(CASES.values()), "per_test": dict(sorted(CASES.items())),
                 "seconds": seconds, "statuses": statuses})

    with counted(request, "fuzz-search-cases", CASES, STATUSES, describe):
        yield


# -- (a) the parser -----------------------------------------------------------------------------

@settings(FUZZ, max_examples=3000)
@given(query=queries(text=any_text, types=st.one_of(st.sampled_from(TYPES),
                                                    st.sampled_from(["Spaceship", "", "patient"]),
                                                    any_text)))
def test_parse_search_returns_a_search_or_raises_bad_request(query, golden):
    CASES["parse_search"] += 1
    rtype, pairs = query
    try:
        search = parse_search(rtype, pairs)
    except BadRequest as exc:
        assert exc.status == 400 and exc.issues
        assert all(issue.path in {name or "(query)" for name, _ in pairs} | {"(type)"}
                   for issue in exc.issues), exc.issues
        return
    assert isinstance(search, Search) and search.resource_type == rtype
    for resource in golden.get(rtype, []):
        assert search.matches(resource) in (True, False)


@pytest.mark.parametrize("pairs, bad", [
    ([("_count", "²")], "_count"),           # str.isdigit() is True for these; int() refuses
    ([("_offset", "٣")], "_offset"),
    ([("_count", "１")], "_count"),
])
def test_non_ascii_digits_are_refused_not_crashed_on(pairs, bad):
    with pytest.raises(BadRequest) as refused:
        parse_search("Observation", pairs)
    assert [issue.path for issue in refused.value.issues] == [bad]


@pytest.mark.parametrize("path, params, bad, status", [
    ("/fhir/Observation", {"date": "ge2025-01-01T10:00+99:99"}, "date", 400),  # no timezone
    ("/fhir/Observation", {"_count": "²"}, "_count", 400),
    ("/fhir/Patient/_history", {"_count": "²"}, "_count", 400),
    ("/fhir/Patient/_history", {"_offset": "9" * 25}, "_offset", 400),  # SQLite overflow
    ("/fhir/Patient/pat-p01/_history/²", {}, None, 404),
    ("/fhir/Patient/pat-p01/_history/" + "9" * 25, {}, None, 404),
])
def test_numbers_and_offsets_found_by_fuzzing_are_refused(client, path, params, bad, status):
    response = client.get(path, query_string=params)
    assert response.status_code == status, response.get_json()
    if bad:
        assert [i["expression"] for i in response.get_json()["issue"]] == [[bad]]


# -- (b) the HTTP search API --------------------------------------------------------------------

@settings(FUZZ, max_examples=1000)
@given(query=queries())
def test_fhir_search_never_fails_and_refusals_name_a_parameter(query, client, store_app):
    CASES["GET /fhir/<type>"] += 1
    rtype, pairs = query
    response = client.get(f"/fhir/{rtype}", query_string=pairs)
    STATUSES[response.status_code] += 1
    formats = [value for name, value in pairs if name == "_format"]
    allowed = (200, 400, 406) if formats else (200, 400)
    assert response.status_code in allowed, (response.status_code, response.data[:500])
    body = response.get_json(force=True)
    if response.status_code == 200:
        assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
        assert all(e["resource"]["resourceType"] == rtype
                   for e in body.get("entry", []) if e["search"]["mode"] == "match")
    else:
        assert body["resourceType"] == "OperationOutcome"
        if response.status_code == 406:
            assert [i.get("expression") for i in body["issue"]] == [["_format"]]
        sent = {name for name, _ in pairs}
        if any(_CONTROL.search(name) or not name for name in sent):
            sent.add("(query)")  # a name that cannot be printed, or none: "(query)"
        if "" in sent:  # api.screen names a nameless parameter "", which FHIR JSON cannot
            sent.add(None)  # hold: the empty expression is left out
        named = [issue.get("expression", [None])[0] for issue in body["issue"]]
        assert named and all(name in sent for name in named), (named, sent)
    assert snapshot(store_app) == BASELINE["store"]


# -- (c) date search partitions ---------------------------------------------------------------

def _dated_observations(client, patient: str) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    """The patient's Observations that have a date, with the range their date covers."""
    bundle = client.get("/fhir/Observation", query_string={"patient": patient,
                                                           "_count": "500"}).get_json()
    assert bundle["total"] <= 500
    out = {}
    for entry in bundle.get("entry", []):
        resource = entry["resource"]
        rng = None
        if "effectiveDateTime" in resource:
            rng = date_range(resource["effectiveDateTime"])
        elif "effectiveInstant" in resource:
            rng = date_range(resource["effectiveInstant"])
        elif "effectivePeriod" in resource:
            period = resource["effectivePeriod"]
            start = date_range(period["start"])[0] if "start" in period else \
                dt.datetime.min.replace(tzinfo=dt.timezone.utc)
            end = date_range(period["end"])[1] if "end" in period else \
                dt.datetime.max.replace(tzinfo=dt.timezone.utc)
            rng = (start, end)
        if rng is not None:
            out[resource["id"]] = rng
    return out


class _Quiet(dict):
    """A fixture value Hypothesis may print in a failure report without pages of it."""

    def __repr__(self) -> str:
        return f"<{len(self)} entries>"


@pytest.fixture(scope="module")
def dated(client) -> dict[str, dict[str, tuple[dt.datetime, dt.datetime]]]:
    out = _Quiet({f"pat-p0{n}": _dated_observations(client, f"pat-p0{n}") for n in range(1, 7)})
    assert sum(map(len, out.values())) > 50
    assert any(hi - lo > dt.timedelta(days=1) for obs in out.values() for lo, hi in obs.values())
    return out


def _ids(client, patient: str, date: str) -> set[str]:
    response = client.get("/fhir/Observation", query_string=[
        ("patient", patient), ("date", date), ("_count", "500")])
    assert response.status_code == 200, response.get_json()
    return {e["resource"]["id"] for e in response.get_json().get("entry", [])}


@settings(FUZZ, max_examples=200)
@given(patient=st.sampled_from([f"pat-p0{n}" for n in range(1, 7)]),
       when=fhir_dates(lo=dt.datetime(2024, 6, 1), hi=dt.datetime(2026, 3, 1),
                       zones=valid_zones))
def test_date_ge_and_lt_partition_a_patients_observations(patient, when, client, dated):
    CASES["date partitions"] += 1
    observations = dated[patient]
    lo, hi = date_range(when)
    ge, lt = _ids(client, patient, "ge" + when), _ids(client, patient, "lt" + when)
    le, gt = _ids(client, patient, "le" + when), _ids(client, patient, "gt" + when)
    eq = _ids(client, patient, when)
    # Together they cover every dated Observation, and overlap exactly where the target's
    # range contains the start (ge/lt) or the end (le/gt) of the value's range.
    assert ge | lt == set(observations)
    assert ge & lt == {i for i, (t_lo, t_hi) in observations.items() if t_lo < lo < t_hi}
    assert le | gt == set(observations)
    assert le & gt == {i for i, (t_lo, t_hi) in observations.items() if t_lo < hi < t_hi}
    # eq: the target lies within the value's range, so it is both ge and le.
    assert eq == {i for i, (t_lo, t_hi) in observations.items() if lo <= t_lo and t_hi <= hi}
    assert eq <= ge & le
