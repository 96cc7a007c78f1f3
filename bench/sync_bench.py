"""Sync throughput: the bridge's push to HAPI against the same bundles posted directly.

Three ways to get the same ~5,000 generated resources into the local HAPI server (loopback),
each phase starting from an empty server ($expunge in between, not timed):

- bridge:       ``Pusher.push_all()`` from a fresh copy of a prepared SQLite store (outbox
                claims, coalescing, bundle building, confirmations), first writes as
                ``--first-write`` (default client ids: ``PUT Type/<id derived from the record>``;
                or conditional updates ``PUT Type?identifier=...``), ``--in-flight`` bundles at
                once;
- direct:       the exact transaction bundles the bridge sent, posted in the same order with a
                plain ``requests.Session().post(base, json=bundle)``, as many at once as the
                bridge (``--in-flight``), each waiting for the bundles whose resources it points
                at, as the bridge does. Only the references that point at resources of earlier
                bundles by a server-assigned id change (HAPI assigns fresh UUIDs after an
                expunge; client ids stay); their positions are found before the clock starts,
                so the timed loop only swaps strings, posts and reads the answer;
- per-resource: the same entries as one plain request each, of the kind the bridge sent
                (``PUT Type/<client id>``, the cheapest, or the conditional update), one at a
                time, ``urn:uuid`` references replaced by the ``Type/id`` the server assigned
                earlier in the phase (a target not created yet is sent first). Optionally on the
                first ``--single-limit`` resources only; the rate is then scaled as resources/s.

Each run does the three phases (order rotated from run to run so warm-up and drift do not
favour one); a warm-up push before the runs is not counted. The figures are medians of the
runs, the ratios are taken against the direct and per-resource baselines of this same script.
Saving the generated records into the store is not part of any timed phase.

Every phase line shows, per bundle (or per request), the HTTP time (p50, p95, in ms) and the
client work: wall time minus HTTP time, i.e. what the bridge (or the plain client) spends on
its own between requests.

    python bench/sync_bench.py [--runs 3] [--resources 5000] [--single-limit 1000]
                               [--batch-size 100] [--in-flight 2]
                               [--first-write client-ids|conditional-update]
                               [--base-url http://127.0.0.1:8090/fhir]

Needs the local HAPI server (scripts/hapi-server start). It empties that server ($expunge)
before every phase and at the end: do not point it at a server holding data you need, nor
run it while the HAPI tests use the same server (each would expunge the other's data; the
benchmark stops when the server's counts are not what it sent). For a private server:
``HAPI_PORT=8095 scripts/hapi-server start`` and ``--base-url http://127.0.0.1:8095/fhir``
(not 8091: tests/test_sync_durability.py runs its own instance there).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import re
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from fhir_bridge import PROJECT_ROOT
from fhir_bridge.app import build_bridge
from fhir_bridge.config import load_config
from fhir_bridge.mapping.document import load_document
from fhir_bridge.mapping.engine import Mapper
from fhir_bridge.store.database import create_engine
from fhir_bridge.sync import first_writes
from fhir_bridge.sync.client import FhirClient
from fhir_bridge.sync.push import Pusher
from fhir_bridge.sync.targets import target_from_config

DEFAULT_BASE = "http://127.0.0.1:8090/fhir"
TARGET = "local-hapi"
FHIR_JSON = "application/fhir+json"
HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
TIMEOUT = (5, 120)  # connect, read (seconds) for every request of the harness
EXPUNGE_TIMEOUT = 300
_LOCATION = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?/?$")
_RELATIVE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")


# -- generated data ------------------------------------------------------------------------------


def fixture_documents() -> list[tuple[str, dict]]:
    paths = sorted((PROJECT_ROOT / "fixtures" / "internal").glob("*.json"))
    return [(p.stem, orjson.loads(p.read_bytes())) for p in paths]


def document_ids(document: Any) -> set[str]:
    """Every ``id`` value of a document at any depth: record ids and the ids of nested items
    (care-plan goals and activities), which other fields of the document may name."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("id"), str):
                found.add(node["id"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    return found


def clone_document(document: dict, copy_no: int) -> dict:
    """A copy of a document whose ids are all unique to this copy.

    Every string equal to an id of the document (``document_ids``) gets the suffix
    ``-c<copy_no>``: record ids, nested ids, ``*_id`` fields, lists of ids and ``{type, id}``
    person references alike (references can only name records of the document, so nothing
    else needs to change). A patient's ``mrn`` gets the same suffix. The clone must still
    load (``load_document``).
    """
    ids = document_ids(document)
    suffix = f"-c{copy_no}"

    def walk(node: Any, key: str | None = None) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if isinstance(node, str) and (node in ids or key == "mrn"):
            return node + suffix
        return node

    return walk(document)


def generate(min_resources: int, mapper) -> tuple[list[dict], int, int]:
    """Clones of the six fixture documents, enough copies for ``min_resources`` distinct
    resources. Returns (documents, copies, resources per copy)."""
    originals = fixture_documents()

    def resources_of(copy_no: int) -> set[tuple[str, str]]:
        keys = set()
        for _, doc in originals:
            for concept, record in load_document(clone_document(doc, copy_no)):
                keys |= {(r["resourceType"], r["id"]) for r in
                         mapper.to_fhir(concept.name, record)}
        return keys

    per_copy = len(resources_of(0))
    copies = max(1, math.ceil(min_resources / per_copy))
    return [clone_document(doc, k) for k in range(copies) for _, doc in originals], copies, \
        per_copy


def build_store(db_path: Path, documents: list[dict]) -> dict[str, Any]:
    """Save the documents into a fresh SQLite store (the template each bridge phase copies)."""
    config = load_config({"database_url": f"sqlite:///{db_path}"})
    bridge = build_bridge(config)
    identities: dict[tuple[str, str], tuple[str, str]] = {}
    records = 0
    started = time.perf_counter()
    for document in documents:
        pairs = load_document(document)  # raises if a clone is not a valid document
        records += len(pairs)
        bridge.store.save(pairs, source="bench")
        for concept, record in pairs:
            for resource in bridge.mapper.to_fhir(concept.name, record):
                ident = resource["identifier"][0]
                identities[(resource["resourceType"], resource["id"])] = \
                    (ident["system"], ident["value"])
    seconds = time.perf_counter() - started
    if len(set(identities.values())) != len(identities):
        raise SystemExit("generated data: two resources share an identifier")
    with bridge.engine.connect() as conn:
        outbox_rows = conn.exec_driver_sql("SELECT count(*) FROM outbox").scalar()
        resources = conn.exec_driver_sql(
            "SELECT count(*) FROM resources WHERE NOT deleted").scalar()
    bridge.engine.dispose()
    with sqlite3.connect(db_path) as raw:  # fold the WAL into the file the phases copy
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"records": records, "resources": resources, "outbox_rows": outbox_rows,
            "seconds": seconds, "config": config}


def copy_store(template: Path, dest: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(template) + suffix)
        if src.exists():
            shutil.copyfile(src, Path(str(dest) + suffix))


# -- the HAPI server -----------------------------------------------------------------------------


def check_loopback(base: str) -> None:
    host = urlsplit(base).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing {base}: this benchmark only talks to a loopback server")


def expunge(session: requests.Session, base: str) -> None:
    response = session.post(f"{base}/$expunge", data=orjson.dumps({
        "resourceType": "Parameters",
        "parameter": [{"name": "expungeEverything", "valueBoolean": True}]}),
        headers=HEADERS, timeout=(5, EXPUNGE_TIMEOUT))
    response.raise_for_status()


def server_counts(session: requests.Session, base: str, types: list[str]) -> dict[str, int]:
    out = {}
    for rtype in types:
        response = session.get(f"{base}/{rtype}", params={"_summary": "count"},
                               headers={"Accept": FHIR_JSON, "Cache-Control": "no-cache"},
                               timeout=TIMEOUT)
        response.raise_for_status()
        out[rtype] = response.json()["total"]
    return out


def ensure_empty(session: requests.Session, base: str, types: list[str]) -> None:
    expunge(session, base)
    left = {k: v for k, v in server_counts(session, base, types).items() if v}
    if left:
        raise SystemExit(f"HAPI is not empty after $expunge: {left}")


def server_facts(session: requests.Session, base: str) -> str:
    response = session.get(f"{base}/metadata", headers={"Accept": FHIR_JSON}, timeout=TIMEOUT)
    response.raise_for_status()
    doc = response.json()
    software = doc.get("software") or {}
    return (f"{software.get('name', '?')} {software.get('version', '?')} "
            f"(FHIR {doc.get('fhirVersion', '?')}) at {base}")


# -- phases --------------------------------------------------------------------------------------


@dataclass
class Capture:
    """What the bridge sent and what HAPI answered, to replay it."""

    bundles: list[dict] = field(default_factory=list)
    answers: list[dict] = field(default_factory=list)

    def server_refs(self) -> dict[str, str]:
        """``Type/<server id>`` (as the bridge's later bundles point at it) -> entry fullUrl."""
        out = {}
        for bundle, answer in zip(self.bundles, self.answers):
            for entry, reply in zip(bundle["entry"], answer.get("entry") or []):
                match = _LOCATION.search((reply.get("response") or {}).get("location") or "")
                if match and entry.get("fullUrl"):
                    out[f"{match.group(1)}/{match.group(2)}"] = entry["fullUrl"]
        return out


@dataclass
class Phase:
    name: str
    resources: int
    seconds: float
    latencies_ms: list[float]
    note: str = ""

    @property
    def rate(self) -> float:
        return self.resources / self.seconds

    @property
    def own_ms(self) -> float:
        """Client-side work per request: wall time minus the time spent in HTTP calls."""
        return (self.seconds * 1000 - sum(self.latencies_ms)) / max(len(self.latencies_ms), 1)


def bridge_phase(template: Path, workdir: Path, config: dict, base: str, run_label: str,
                 batch_size: int | None, in_flight: int,
                 first_write: str) -> tuple[Phase, Capture]:
    db = workdir / f"push-{run_label}.db"
    copy_store(template, db)
    engine = create_engine(f"sqlite:///{db}")
    first_writes.record(engine, TARGET, first_write)  # as `target check` would (not timed)
    profile = {"base_url": base, "auth": {"type": "none"}, "in_flight": in_flight}
    if batch_size:
        profile["batch_size"] = batch_size
    cfg = dict(config, sync=dict(config["sync"], targets={TARGET: profile}))
    target = target_from_config(cfg, TARGET)
    client = FhirClient(base, timeout=TIMEOUT, max_retries=2, backoff_base=0.1, backoff_max=1)
    capture = Capture()
    latencies: list[float] = []
    send = client.transaction
    lock = threading.Lock()

    def timed_transaction(bundle):
        # Keeps references, no copies: the pusher builds a new bundle for every call and does
        # not touch it afterwards. Bundles in the order they went (several may be in flight).
        with lock:
            index = len(capture.bundles)
            capture.bundles.append(bundle)
            capture.answers.append({})
        started = time.perf_counter()
        answer = send(bundle)
        latencies.append((time.perf_counter() - started) * 1000)
        capture.answers[index] = answer
        return answer

    client.transaction = timed_transaction
    pusher = Pusher(engine, client, target, worker="bench")
    try:
        started = time.perf_counter()
        report = pusher.push_all()
        seconds = time.perf_counter() - started
    finally:
        client.close()
        engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    if report.dead or report.conflicts or report.retried or report.errors:
        raise SystemExit(f"bridge push failed: {report}")
    return Phase("bridge", report.sent, seconds, latencies, f"{report.bundles} bundles"), \
        capture


def _reference_holders(node: Any):
    """The dicts that hold a ``reference`` string."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            yield from _reference_holders(value)
    elif isinstance(node, list):
        for value in node:
            yield from _reference_holders(value)


def _assigned(location: str | None) -> str:
    match = _LOCATION.search(location or "")
    if not match:
        raise SystemExit(f"HAPI answered without a usable location: {location!r}")
    return f"{match.group(1)}/{match.group(2)}"


def direct_phase(capture: Capture, base: str, in_flight: int) -> Phase:
    """The captured bundles, in order, with plain requests (one Session, keep-alive), up to
    ``in_flight`` at once; a bundle goes once the bundles it points at have been answered."""
    server_refs = capture.server_refs()
    bundles = orjson.loads(orjson.dumps(capture.bundles))  # a copy to edit (not timed)
    made_by = {full_url: i for i, bundle in enumerate(bundles)
               for full_url in (e.get("fullUrl") for e in bundle["entry"]) if full_url}
    plans = []  # per bundle: (holders of references to earlier bundles, their fullUrls)
    waits = []  # per bundle: the earlier bundles it points at
    for index, bundle in enumerate(bundles):
        swaps = [(holder, server_refs[holder["reference"]])
                 for entry in bundle["entry"] for holder in _reference_holders(
                     entry.get("resource")) if holder["reference"] in server_refs]
        for entry in bundle["entry"]:  # updates by server id (none on a first push)
            url = entry["request"]["url"]
            if _RELATIVE.match(url) and url in server_refs and \
                    server_refs[url] != entry.get("fullUrl"):  # not its own client id
                swaps.append((entry["request"], server_refs[url]))
        plans.append(swaps)
        waits.append({made_by[full_url] for _, full_url in swaps} - {index})
    assigned: dict[str, str] = {}  # fullUrl -> Type/id on the server, this phase
    latencies = []
    session = requests.Session()

    def post(bundle: dict, swaps: list) -> int:
        for holder, full_url in swaps:
            key = "reference" if "reference" in holder else "url"
            holder[key] = assigned[full_url]
        t0 = time.perf_counter()
        response = session.post(base, json=bundle, headers=HEADERS, timeout=TIMEOUT)
        latencies.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"direct: HTTP {response.status_code}: {response.text[:500]}")
        replies = response.json().get("entry") or []
        if len(replies) != len(bundle["entry"]):
            raise SystemExit("direct: the answer does not match the bundle")
        for entry, reply in zip(bundle["entry"], replies):
            if entry.get("fullUrl"):
                assigned[entry["fullUrl"]] = _assigned(reply["response"].get("location"))
        return len(bundle["entry"])

    futures: dict[int, Any] = {}
    try:
        with ThreadPoolExecutor(max_workers=in_flight) as pool:
            started = time.perf_counter()
            for index, (bundle, swaps) in enumerate(zip(bundles, plans)):
                for j in waits[index]:
                    futures[j].result()
                while sum(1 for f in futures.values() if not f.done()) >= in_flight:
                    wait([f for f in futures.values() if not f.done()],
                         return_when=FIRST_COMPLETED)
                futures[index] = pool.submit(post, bundle, swaps)
            sent = sum(f.result() for f in futures.values())
            seconds = time.perf_counter() - started
    finally:
        session.close()
    return Phase("direct", sent, seconds, latencies,
                 f"{len(bundles)} bundles, up to {in_flight} at once")


def single_phase(capture: Capture, base: str, limit: int | None) -> Phase:
    """One plain request per resource (the kind the bridge sent), in the bridge's order."""
    server_refs = capture.server_refs()
    entries = [entry for bundle in orjson.loads(orjson.dumps(capture.bundles))
               for entry in bundle["entry"]]
    by_full_url = {e["fullUrl"]: i for i, e in enumerate(entries) if e.get("fullUrl")}
    plans = []  # per entry: [(holder, fullUrl of its target)] (found before the clock starts)
    for entry in entries:
        swaps = []
        for holder in _reference_holders(entry.get("resource")):
            ref = holder["reference"]
            if ref.startswith("urn:uuid:"):
                swaps.append((holder, ref))
            elif ref in server_refs:
                swaps.append((holder, server_refs[ref]))
        plans.append(swaps)
    wanted = entries if limit is None else entries[:limit]
    assigned: dict[str, str] = {}
    done: set[int] = set()
    latencies: list[float] = []
    session = requests.Session()

    def put(index: int, depth: int = 0) -> None:
        if depth > 20:
            raise SystemExit("per-resource: reference cycle")
        entry = entries[index]
        for holder, full_url in plans[index]:
            if full_url not in assigned:  # its target has not been created yet: send it first
                put(by_full_url[full_url], depth + 1)
            holder["reference"] = assigned[full_url]
        request = entry["request"]
        headers = dict(HEADERS, **({"If-Match": request["ifMatch"]} if "ifMatch" in request
                                   else {}))
        url = request["url"]
        if _RELATIVE.match(url) and url in server_refs and \
                server_refs[url] != entry.get("fullUrl"):  # not its own client id
            url = assigned[server_refs[url]]
        t0 = time.perf_counter()
        response = session.request(request["method"], f"{base}/{url}",
                                   json=entry.get("resource"), headers=headers, timeout=TIMEOUT)
        latencies.append((time.perf_counter() - t0) * 1000)
        if response.status_code not in (200, 201):
            raise SystemExit(f"per-resource: HTTP {response.status_code} for "
                             f"{request['method']} {url.split('?')[0]}: {response.text[:500]}")
        if entry.get("fullUrl"):
            assigned[entry["fullUrl"]] = _assigned(response.headers.get("Location")
                                                   or response.headers.get("Content-Location"))
        done.add(index)

    try:
        started = time.perf_counter()
        for index in range(len(wanted)):
            if index not in done:
                put(index)
        seconds = time.perf_counter() - started
    finally:
        session.close()
    note = "all resources" if limit is None or limit >= len(entries) else \
        f"first {len(done)} of {len(entries)} resources, rate scaled"
    return Phase("per-resource", len(done), seconds, latencies, note)


# -- reporting -----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def describe(phase: Phase) -> str:
    unit = "request" if phase.name == "per-resource" else "bundle"
    return (f"  {phase.name:<12} {phase.resources:>6} resources in {phase.seconds:6.2f} s = "
            f"{phase.rate:5.0f} resources/s; per {unit}: HTTP p50 "
            f"{percentile(phase.latencies_ms, .5):.1f} ms, p95 "
            f"{percentile(phase.latencies_ms, .95):.1f} ms, client work (wall minus HTTP) "
            f"{phase.own_ms:.1f} ms" + (f"; {phase.note}" if phase.note else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs (default 3)")
    parser.add_argument("--resources", type=int, default=5000,
                        help="at least this many resources (default 5000)")
    parser.add_argument("--single-limit", type=int, default=1000,
                        help="per-resource phase on the first N resources (0 = all; "
                             "default 1000)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="entries per bundle (default: the config's sync.batch_size, 100)")
    parser.add_argument("--in-flight", type=int, default=2,
                        help="bundles on their way at once, bridge and direct (default 2)")
    parser.add_argument("--first-write", choices=first_writes.MODES,
                        default=first_writes.CLIENT_IDS,
                        help="how the bridge writes what the server lacks (default client-ids)")
    parser.add_argument("--base-url", default=DEFAULT_BASE,
                        help=f"the HAPI server, loopback only (default {DEFAULT_BASE})")
    args = parser.parse_args()
    base = args.base_url.rstrip("/")
    check_loopback(base)
    begun = time.perf_counter()
    probe = requests.Session()
    probe.trust_env = False  # loopback: never through a proxy
    try:
        facts = server_facts(probe, base)
    except requests.RequestException as exc:
        raise SystemExit(f"HAPI does not answer at {base} ({type(exc).__name__}): "
                         "scripts/hapi-server start") from None
    load_start = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
          f"Python {platform.python_version()}; load average {load_start[0]:.2f} at start")
    print(f"server: {facts}")

    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        workdir = Path(tmp)
        template = workdir / "template.db"
        config0 = load_config({"database_url": f"sqlite:///{template}"})
        mapper = Mapper(config0["identifier_system_base"], config0["local_code_system_base"])
        documents, copies, per_copy = generate(args.resources, mapper)
        store = build_store(template, documents)
        print(f"data: {copies} copies x 6 fixture documents = {len(documents)} documents, "
              f"{store['records']} records -> {store['resources']} resources "
              f"({per_copy} per copy), {store['outbox_rows']} outbox rows; saved in "
              f"{store['seconds']:.1f} s (not timed); batch size "
              f"{args.batch_size or store['config']['sync']['batch_size']}, "
              f"{args.in_flight} in flight, first writes: {args.first_write}")
        single_limit = args.single_limit or None

        # Warm-up (not counted): one full bridge push, which also captures the bundles the
        # first runs replay when they do not start with the bridge.
        types = ["Patient", "Practitioner", "RelatedPerson", "Condition", "MedicationRequest",
                 "Observation", "CarePlan", "CareTeam", "Goal"]
        ensure_empty(probe, base, types)
        warm, capture = bridge_phase(template, workdir, store["config"], base, "warm-up",
                                     args.batch_size, args.in_flight, args.first_write)
        types = sorted({e["resource"]["resourceType"] for b in capture.bundles
                        for e in b["entry"] if "resource" in e})
        print(f"warm-up (not counted): bridge {warm.resources} resources in {warm.seconds:.2f}"
              f" s = {warm.rate:.0f} resources/s; {len(capture.bundles)} bundles of up to "
              f"{max(len(b['entry']) for b in capture.bundles)} entries")
        expected = warm.resources

        orders = [("bridge", "direct", "per-resource"), ("direct", "per-resource", "bridge"),
                  ("per-resource", "bridge", "direct")]
        results: dict[str, list[Phase]] = {"bridge": [], "direct": [], "per-resource": []}
        for run in range(args.runs):
            order = orders[run % len(orders)]
            print(f"run {run + 1} of {args.runs} (order: {', '.join(order)})")
            for name in order:
                ensure_empty(probe, base, types)
                if name == "bridge":
                    phase, capture = bridge_phase(template, workdir, store["config"], base,
                                                  f"run{run}", args.batch_size, args.in_flight,
                                                  args.first_write)
                elif name == "direct":
                    phase = direct_phase(capture, base, args.in_flight)
                else:
                    phase = single_phase(capture, base, single_limit)
                on_server = sum(server_counts(probe, base, types).values())
                want = phase.resources if name == "per-resource" else expected
                if phase.resources != want or on_server != want:
                    raise SystemExit(f"{name}: sent {phase.resources}, server holds "
                                     f"{on_server}, expected {want}: was the server used by "
                                     "someone else meanwhile?")
                results[name].append(phase)
                print(describe(phase))
        ensure_empty(probe, base, types)  # leave HAPI empty

    medians = {name: statistics.median(p.rate for p in phases)
               for name, phases in results.items()}
    lat = {name: statistics.median(percentile(p.latencies_ms, .5) for p in phases)
           for name, phases in results.items()}
    own = {name: statistics.median(p.own_ms for p in phases) for name, phases in results.items()}
    single_note = results["per-resource"][0].note
    largest = max(len(b["entry"]) for b in capture.bundles)
    print(f"medians of {args.runs} runs:")
    for name, unit in (("bridge", f"bundle of up to {largest}"),
                       ("direct", f"bundle of up to {largest}, plain requests"),
                       ("per-resource", f"request; {single_note}")):
        print(f"  {name:<12} {medians[name]:6.0f} resources/s  (per {unit}: HTTP p50 "
              f"{lat[name]:.1f} ms, client work {own[name]:.1f} ms)")
    per_run_direct = " ".join(f"{b.rate / d.rate:.2f}" for b, d in
                              zip(results["bridge"], results["direct"]))
    per_run_single = " ".join(f"{b.rate / s.rate:.1f}" for b, s in
                              zip(results["bridge"], results["per-resource"]))
    print(f"bridge/direct = {medians['bridge'] / medians['direct']:.2f} (target >= 0.95)  "
          f"[per run: {per_run_direct}]")
    print(f"bridge/per-resource = {medians['bridge'] / medians['per-resource']:.1f} "
          f"(target >= 5)  [per run: {per_run_single}]")
    load_end = os.getloadavg()
    print(f"load average {load_end[0]:.2f} at end; total {time.perf_counter() - begun:.0f} s; "
          f"{dt.datetime.now().isoformat(timespec='seconds')}")
    probe.close()


if __name__ == "__main__":
    main()
