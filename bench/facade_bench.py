"""FHIR facade under load: the care-plan search against the bridge (gunicorn) and against HAPI.

The search an EHR runs to show a patient's care plan, in one request:

    CarePlan?patient=X&_include=CarePlan:care-team&_include=CarePlan:goal
        &_include=CarePlan:activity-reference&_include=CarePlan:condition
        &_include:iterate=CareTeam:participant

Both servers hold the same data: ``--patients`` synthetic patients (clones of the six fixture
documents, every id and MRN suffixed ``-c<run tag>-<k>`` so several runs and other users'
data never collide) are saved into a fresh bridge database through the RecordStore, and the
bridge's own sync (``pusher_for`` + ``push_all``) pushes them to HAPI. HAPI's patient ids come
from the bridge's ``remote_resources`` map. Neither step is timed.

The bridge is served by gunicorn (``-k gthread``, one start per ``--settings`` entry
``WORKERSxTHREADS``) on a free loopback port, configured through environment variables
(FHIR_BRIDGE_DATABASE_URL, FHIR_BRIDGE_DEV_SECRET), with a system/*.rs token minted by
``mint_token`` for the development issuer. Every search is audited (one AuditEvent row written
per request) as in a real deployment.

Load: ``--clients`` threads, each with its own requests.Session (keep-alive), each request for a
random patient. Per gunicorn setting: a correctness pass (every patient once on both servers;
the resources each returns are compared, HAPI ids mapped back to the bridge's), a warm-up of
both targets (not counted), then ``--runs`` runs of ``--duration`` seconds per target, the
order of targets rotating from run to run. HAPI is asked as a real EHR would (its search cache
on, no Cache-Control header); ``--hapi-cache both`` also measures it with
``Cache-Control: no-cache`` (every search run afresh). Every response is checked: HTTP 200, a
searchset Bundle with one CarePlan and exactly the number of entries the correctness pass saw.

Figures: requests/s, p50 and p99 latency (ms), medians of the runs; ratio bridge/HAPI
throughput against HAPI measured in the same runs. ``--profile`` (default on) ends with an
in-process look at one search: SQL statements per request, ms per request with and without
the audit write, and cProfile's top functions.

    python bench/facade_bench.py [--patients 200] [--clients 8] [--runs 3] [--duration 10]
        [--settings 2x4,4x2] [--hapi-cache on|off|both]
        [--base-url http://127.0.0.1:8093/fhir] [--database-url sqlite:///...]

HAPI: never expunged or cleaned by this script; its data stays there (namespaced by the run
tag). Use a private instance: ``HAPI_PORT=8093 scripts/hapi-server start`` (the default
--base-url), stop it afterwards. ``--database-url`` postgresql+psycopg://...: the script DROPS
the bridge's tables in that database first (give it a database of its own).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import platform
import pstats
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import requests
import sqlalchemy as sa

from fhir_bridge import PROJECT_ROOT
from fhir_bridge.app import build_bridge, create_app
from fhir_bridge.auth.mint import dev_issuer, mint_token
from fhir_bridge.config import load_config
from fhir_bridge.mapping.document import load_document
from fhir_bridge.store import tables
from fhir_bridge.sync.service import pusher_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync_bench import clone_document, fixture_documents, percentile  # noqa: E402

DEFAULT_BASE = "http://127.0.0.1:8093/fhir"
TARGET = "facade-bench"
FHIR_JSON = "application/fhir+json"
TIMEOUT = (5, 60)
INCLUDES = [("_include", "CarePlan:care-team"), ("_include", "CarePlan:goal"),
            ("_include", "CarePlan:activity-reference"), ("_include", "CarePlan:condition"),
            ("_include:iterate", "CareTeam:participant")]
QUERY_TAIL = "".join(f"&{k}={v}" for k, v in INCLUDES)
DEV_SECRET = "facade-bench-" + "0" * 40  # HS256 secret of the dev issuer, this bench only


# -- data --------------------------------------------------------------------------------------


def generate_patients(count: int, tag: str) -> list[dict]:
    """``count`` documents, one patient each: the six fixtures cloned round-robin."""
    originals = fixture_documents()
    return [clone_document(originals[i % len(originals)][1], f"{tag}-{i // len(originals)}")
            for i in range(count)]


def reset_database(url: str) -> None:
    """A fresh bridge database: PostgreSQL tables dropped (SQLite files are new anyway)."""
    if url.startswith("sqlite"):
        return
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        tables.metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()


@dataclass
class Dataset:
    patients: list[str]  # bridge Patient ids ('pat-p01-c...')
    remote: dict[str, str]  # bridge Patient id -> HAPI Patient id
    local_of: dict[tuple[str, str], str]  # (type, HAPI id) -> bridge id
    records: int
    resources: dict[str, int]
    load_seconds: float
    push_seconds: float
    pushed: int
    refused: list[str]  # what HAPI refused to store (dead-lettered by the push), with why


def load_and_push(config: dict, documents: list[dict], consequences: bool) -> Dataset:
    bridge = build_bridge(config)
    if not consequences:  # no derived records (monitoring items, DetectedIssues, ...)
        bridge.store.consequences = None
    started = time.perf_counter()
    records = 0
    patients = []
    for document in documents:
        pairs = load_document(document)
        records += len(pairs)
        bridge.store.save(pairs, source="bench")
        patients += [bridge.mapper.reference("patient", p["id"]).split("/")[1]
                     for p in document["patients"]]
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    pusher = pusher_for(bridge, TARGET, worker="facade-bench")
    try:
        report = pusher.push_all()
    finally:
        pusher.client.close()
    push_seconds = time.perf_counter() - started
    if report.conflicts or report.retried or report.unavailable or \
            (report.errors and not report.dead):
        raise SystemExit(f"push to HAPI failed: {report}")
    r = tables.remote_resources
    with bridge.engine.connect() as conn:
        rows = conn.execute(sa.select(r.c.resource_type, r.c.local_id, r.c.remote_id)
                            .where(r.c.target == TARGET)).all()
        resources = dict(conn.execute(sa.text(
            "SELECT resource_type, count(*) FROM resources WHERE NOT deleted "
            "GROUP BY resource_type")).all())
        if bridge.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    bridge.engine.dispose()
    remote = {local: rid for rtype, local, rid in rows if rtype == "Patient"}
    missing = [p for p in patients if p not in remote]
    if missing:
        raise SystemExit(f"{len(missing)} patients have no HAPI id after the push: {missing[:3]}")
    return Dataset(patients, remote, {(rtype, rid): local for rtype, local, rid in rows},
                   records, resources, load_seconds, push_seconds, report.sent,
                   list(report.errors))


# -- servers -----------------------------------------------------------------------------------


def check_loopback(base: str) -> None:
    if urlsplit(base).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing {base}: this benchmark only talks to a loopback server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn serving ``fhir_bridge.app:create_app()``, started and stopped by the bench."""

    def __init__(self, database_url: str, workers: int, threads: int, logdir: Path):
        self.port = free_port()
        self.workers, self.threads = workers, threads
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self.log = logdir / f"gunicorn-{workers}x{threads}.log"
        env = dict(os.environ, FHIR_BRIDGE_DATABASE_URL=database_url,
                   FHIR_BRIDGE_DEV_SECRET=DEV_SECRET, FHIR_BRIDGE_LOG_LEVEL="WARNING")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", str(workers),
             "--threads", str(threads), "-b", f"127.0.0.1:{self.port}", "--backlog", "256",
             "--timeout", "60", "--error-logfile", str(self.log), "fhir_bridge.app:create_app()"],
            env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        session = requests.Session()
        session.trust_env = False
        while True:
            try:
                if session.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"gunicorn did not start; log {self.log}:\n"
                                 + self.log.read_text()[-3000:])
            time.sleep(0.2)
        session.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def server_facts(base: str) -> str:
    response = requests.get(f"{base}/metadata", headers={"Accept": FHIR_JSON}, timeout=TIMEOUT)
    response.raise_for_status()
    doc = response.json()
    software = doc.get("software") or {}
    return f"{software.get('name', '?')} {software.get('version', '?')} at {base}"


# -- load --------------------------------------------------------------------------------------


@dataclass
class Target:
    """One thing to load: its URLs per patient, the headers, what each answer must hold."""

    name: str
    urls: dict[str, str]  # bridge patient id -> search URL
    headers: dict[str, str]
    expected: dict[str, int] = field(default_factory=dict)  # bridge patient id -> entries


@dataclass
class Run:
    target: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: Counter

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def check(response: requests.Response, expected: int | None) -> tuple[str | None, int]:
    """(error or None, entries) of one answer."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}", 0
    bundle = orjson.loads(response.content)
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "searchset":
        return "not a searchset Bundle", 0
    entry = bundle.get("entry") or []
    plans = sum(1 for e in entry if e["resource"]["resourceType"] == "CarePlan"
                and (e.get("search") or {}).get("mode") == "match")
    if plans != 1:
        return f"{plans} matching CarePlans", len(entry)
    if expected is not None and len(entry) != expected:
        return f"{len(entry)} entries, expected {expected}", len(entry)
    return None, len(entry)


def load(target: Target, sessions: list[requests.Session], patients: list[str],
         seconds: float, seed: int) -> Run:
    """``len(sessions)`` clients, each in its own thread, for ``seconds``."""
    barrier = threading.Barrier(len(sessions) + 1)
    results: list[tuple[list[float], Counter]] = [([], Counter()) for _ in sessions]
    stop_at = [0.0]

    def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        session = sessions[index]
        latencies, errors = results[index]
        barrier.wait()
        while time.perf_counter() < stop_at[0]:
            patient = rng.choice(patients)
            t0 = time.perf_counter()
            try:
                response = session.get(target.urls[patient], headers=target.headers,
                                       timeout=TIMEOUT)
                error, _ = check(response, target.expected.get(patient))
            except requests.RequestException as exc:
                error = type(exc).__name__
            latencies.append((time.perf_counter() - t0) * 1000)
            if error:
                errors[error] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(len(sessions))]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    stop_at[0] = started + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies = [ms for lat, _ in results for ms in lat]
    errors = sum((err for _, err in results), Counter())
    return Run(target.name, len(latencies), elapsed, latencies, errors)


def sessions_for(count: int) -> list[requests.Session]:
    out = []
    for _ in range(count):
        session = requests.Session()
        session.trust_env = False  # loopback: never through a proxy
        out.append(session)
    return out


# -- correctness -------------------------------------------------------------------------------


def keys_of(response: requests.Response) -> list[tuple[str, str]]:
    response.raise_for_status()
    return [(e["resource"]["resourceType"], e["resource"]["id"])
            for e in orjson.loads(response.content).get("entry") or []]


def compare(bridge: Target, hapi: Target, data: Dataset) -> tuple[list[str], list[str]]:
    """Every patient once on both servers: the same resources? Fills the expected counts.
    Returns (patients with the same answer on both, problems)."""
    session = sessions_for(1)[0]
    problems: list[str] = []
    same: list[str] = []
    differences: Counter = Counter()
    for patient in data.patients:
        local = keys_of(session.get(bridge.urls[patient], headers=bridge.headers,
                                    timeout=TIMEOUT))
        remote = keys_of(session.get(hapi.urls[patient], headers=hapi.headers,
                                     timeout=TIMEOUT))
        bridge.expected[patient] = len(local)
        hapi.expected[patient] = len(remote)
        mapped = {(rtype, data.local_of.get((rtype, rid), f"?{rid}")) for rtype, rid in remote}
        if len(local) != len(set(local)) or len(remote) != len(set(remote)):
            problems.append(f"{patient}: a resource appears twice in a Bundle")
        only_bridge, only_hapi = set(local) - mapped, mapped - set(local)
        if not only_bridge and not only_hapi and len(local) == len(remote):
            same.append(patient)
        for rtype, _ in only_bridge:
            differences[f"{rtype} only in the bridge's answer"] += 1
        for rtype, _ in only_hapi:
            differences[f"{rtype} only in HAPI's answer"] += 1
        if (only_bridge or only_hapi) and len(problems) < 5:
            problems.append(f"{patient}: bridge {len(local)} entries, HAPI {len(remote)}; "
                            f"only bridge {sorted(only_bridge)[:3]}, only HAPI "
                            f"{sorted(only_hapi)[:3]}")
    session.close()
    return same, problems + [f"{n} x {what}" for what, n in sorted(differences.items())]


# -- in-process profile ------------------------------------------------------------------------


def profile(database_url: str, token: str, patients: list[str], requests_n: int) -> None:
    """One search at a time in this process (Flask test client, no HTTP): where the time goes."""
    import fhir_bridge.audit.http as audit_http

    os.environ["FHIR_BRIDGE_DEV_SECRET"] = DEV_SECRET
    app = create_app({"database_url": database_url, "log_level": "WARNING"})
    engine = app.extensions["fhir_bridge"].engine
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON}
    urls = [f"/fhir/CarePlan?patient={p}{QUERY_TAIL}" for p in patients]
    rng = random.Random(7)
    picks = [rng.choice(urls) for _ in range(requests_n)]

    def timed(label: str) -> float:
        for url in picks[:20]:
            client.get(url, headers=headers)
        started = time.perf_counter()
        for url in picks:
            assert client.get(url, headers=headers).status_code == 200
        ms = (time.perf_counter() - started) * 1000 / len(picks)
        print(f"  {label:<52} {ms:6.2f} ms/request")
        return ms

    statements: list[str] = []

    def note(conn, cursor, statement, *rest):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", note)
    client.get(urls[0], headers=headers)
    statements.clear()
    client.get(urls[0], headers=headers)
    kinds = Counter(s.split()[0].upper() + (" audit_events" if "audit_events" in s else "")
                    for s in statements)
    print(f"  SQL statements per search: {len(statements)} ("
          + ", ".join(f"{n} {k}" for k, n in kinds.most_common()) + ")")
    sa.event.remove(engine, "before_cursor_execute", note)
    full = timed("whole request, in process, one thread")
    original = audit_http.record
    audit_http.record = lambda engine, entry: None
    try:
        no_audit = timed("same, AuditEvent write replaced by a no-op")
    finally:
        audit_http.record = original
    print(f"  -> the AuditEvent write costs {full - no_audit:.2f} ms of {full:.2f} ms")
    prof = cProfile.Profile()
    prof.enable()
    for url in picks:
        client.get(url, headers=headers)
    prof.disable()
    stats = pstats.Stats(prof)
    rows = []
    for (filename, line, name), (cc, nc, tt, ct, callers) in stats.stats.items():
        if "fhir_bridge" in filename or name in ("dumpb", "loads", "execute", "commit",
                                                 "encode", "decode", "full_dispatch_request"):
            short = filename.split("site-packages/")[-1].split("fhir_bridge/")[-1]
            rows.append((ct, tt, nc, f"{short}:{line}({name})"))
    rows.sort(reverse=True)
    print(f"  cProfile, {len(picks)} searches (times per search, under the profiler):")
    print(f"    {'cumulative':>10} {'own':>8} {'calls':>7}  function")
    for ct, tt, nc, label in rows[:28]:
        print(f"    {ct * 1000 / len(picks):8.2f}ms {tt * 1000 / len(picks):6.2f}ms "
              f"{nc / len(picks):7.1f}  {label}")
    engine.dispose()


# -- main --------------------------------------------------------------------------------------


def parse_settings(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        workers, _, threads = part.strip().partition("x")
        out.append((int(workers), int(threads or 1)))
    return out


def describe(runs: list[Run]) -> str:
    errors = sum((r.errors for r in runs), Counter())
    return (f"{statistics.median(r.rate for r in runs):7.1f} req/s  p50 "
            f"{statistics.median(r.p(.5) for r in runs):6.1f} ms  p99 "
            f"{statistics.median(r.p(.99) for r in runs):6.1f} ms  "
            f"[req/s per run: {' '.join(f'{r.rate:.0f}' for r in runs)}]"
            + (f"  ERRORS: {dict(errors)}" if errors else ""))


def growth_table(args) -> None:
    """``--growth``: p50/p99 of three searches at each store size (bench/search_growth.py)."""
    from search_growth import run_growth

    if not args.database_url:
        raise SystemExit("--growth needs --database-url postgresql+psycopg://.../NAME: the "
                         "stores are the databases NAME_<size> (created when missing, their "
                         "bridge tables DROPPED)")
    check_loopback(args.database_url.replace("postgresql+psycopg", "http"))
    sizes = sorted(int(s) for s in args.growth.split(","))
    print(f"search growth on PostgreSQL, {args.growth_runs} runs x {args.growth_requests} "
          f"requests per search and size, sizes interleaved; Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}")
    rows = run_growth(args.database_url, sizes, args.growth_requests, args.growth_runs,
                      args.growth_reuse, DEV_SECRET)
    base = {row[1]: row[3] for row in rows if row[0].size == sizes[0]}
    base50 = {row[1]: row[2] for row in rows if row[0].size == sizes[0]}
    print(f"\nmedians of {args.growth_runs} runs; load average {os.getloadavg()[0]:.2f} at end")
    print("| stored resources | search | p50 ms | p99 ms | p50 / smallest | p99 / smallest "
          "| entries | SQL statements | buffer pages read | p99 per run |\n"
          "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for store, name, p50, p99, entries, p99s, statements, pages in rows:
        print(f"| {store.resources:,} | {name} | {p50:.1f} | {p99:.1f} | "
              f"{p50 / base50[name]:.2f} | {p99 / base[name]:.2f} | {entries:.1f} | "
              f"{statements:g} | {pages:g} | " + " ".join(f"{p:.0f}" for p in p99s) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (threads)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10, help="seconds per run and target")
    parser.add_argument("--warmup", type=float, default=5, help="seconds per target, not counted")
    parser.add_argument("--settings", default="2x4,4x2",
                        help="gunicorn gthread settings WORKERSxTHREADS, comma-separated")
    parser.add_argument("--hapi-cache", choices=("on", "off", "both"), default="on",
                        help="on: HAPI's search cache as deployed; off: Cache-Control: no-cache")
    parser.add_argument("--base-url", default=DEFAULT_BASE, help="HAPI FHIR base (loopback)")
    parser.add_argument("--database-url", default=None,
                        help="bridge database (default: a new SQLite file); PostgreSQL tables "
                             "are DROPPED first")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-consequences", action="store_true",
                        help="save the documents without derived records (monitoring items, "
                             "DetectedIssues, safety activities): what HAPI refuses goes")
    parser.add_argument("--growth", default=None, metavar="SIZES",
                        help="instead: search latency as the store grows, at these stored "
                             "resource counts (e.g. 10000,100000,1000000; search_growth.py, "
                             "PostgreSQL only); no HAPI")
    parser.add_argument("--growth-requests", type=int, default=200,
                        help="requests per search, size and run for --growth")
    parser.add_argument("--growth-runs", type=int, default=5, help="runs for --growth")
    parser.add_argument("--growth-reuse", action="store_true",
                        help="--growth: keep a store already loaded to the same size (it is "
                             "checked against the save path all the same)")
    args = parser.parse_args()
    if args.growth:
        growth_table(args)
        return
    base = args.base_url.rstrip("/")
    check_loopback(base)
    if args.database_url:
        check_loopback(args.database_url.replace("postgresql+psycopg", "http"))
    begun = time.perf_counter()
    try:
        facts = server_facts(base)
    except requests.RequestException as exc:
        raise SystemExit(f"HAPI does not answer at {base} ({type(exc).__name__}): "
                         "HAPI_PORT=8093 scripts/hapi-server start") from None
    load_start = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
          f"Python {platform.python_version()}; load average {load_start[0]:.2f} at start")
    print(f"HAPI: {facts}")
    tag = secrets.token_hex(3)

    with tempfile.TemporaryDirectory(prefix="facade-bench-") as tmp:
        workdir = Path(tmp)
        database_url = args.database_url or f"sqlite:///{workdir / 'bridge.db'}"
        reset_database(database_url)
        config = load_config({"database_url": database_url, "log_level": "WARNING",
                              "sync": {"target": TARGET, "targets": {
                                  TARGET: {"base_url": base, "auth": {"type": "none"}}}}})
        data = load_and_push(config, generate_patients(args.patients, tag),
                             not args.no_consequences)
        total = sum(data.resources.values())
        print(f"data: {len(data.patients)} patients (run tag {tag}), {data.records} records -> "
              f"{total} resources ({', '.join(f'{n} {k}' for k, n in sorted(data.resources.items()))}); "
              f"saved in {data.load_seconds:.1f} s, pushed {data.pushed} to HAPI in "
              f"{data.push_seconds:.1f} s (neither timed); bridge database "
              f"{sa.engine.make_url(database_url).get_backend_name()}"
              + ("; derived records (monitoring items, DetectedIssues) off"
                 if args.no_consequences else ""))
        if data.refused:
            reasons = Counter(e.split(": ", 1)[1][:160] for e in data.refused)
            print(f"  HAPI refused {len(data.refused)} resources (dead-lettered by the push):")
            for reason, n in reasons.most_common(3):
                print(f"    {n} x {reason}")

        issuer = dev_issuer(config["auth"])
        token = mint_token(DEV_SECRET, issuer["issuer"], issuer["audience"], ["system/*.rs"],
                           subject="facade-bench", ttl_seconds=6 * 3600)
        bridge_headers = {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON}
        hapi_urls = {p: f"{base}/CarePlan?patient=Patient/{data.remote[p]}{QUERY_TAIL}"
                     for p in data.patients}
        hapi_targets = []
        if args.hapi_cache in ("on", "both"):
            hapi_targets.append(Target("hapi", hapi_urls, {"Accept": FHIR_JSON}))
        if args.hapi_cache in ("off", "both"):
            hapi_targets.append(Target("hapi-nocache", hapi_urls,
                                       {"Accept": FHIR_JSON, "Cache-Control": "no-cache"}))
        print(f"search: CarePlan?patient=X{QUERY_TAIL}; {args.clients} clients, "
              f"{args.runs} runs x {args.duration:g} s per target, warm-up {args.warmup:g} s; "
              "hapi = search cache on (no Cache-Control header), hapi-nocache = "
              "Cache-Control: no-cache")

        summary = []
        for setting_no, (workers, threads) in enumerate(parse_settings(args.settings)):
            server = Gunicorn(database_url, workers, threads, workdir)
            label = f"gunicorn gthread {workers} workers x {threads} threads"
            try:
                bridge = Target("bridge", {p: f"{server.base}/CarePlan?patient={p}{QUERY_TAIL}"
                                           for p in data.patients}, bridge_headers)
                targets = [bridge, *hapi_targets]
                same, problems = compare(bridge, hapi_targets[0], data)
                for t in hapi_targets[1:]:
                    t.expected = hapi_targets[0].expected
                counts = Counter(bridge.expected[p] for p in same)
                print(f"{label}: correctness pass over {len(data.patients)} patients: "
                      f"bridge == HAPI resource sets for {len(same)}; entries per Bundle "
                      f"{dict(sorted(counts.items()))} (entries: patients)")
                for problem in problems:
                    print(f"    {problem}")
                if not same:
                    raise SystemExit("no patient has the same answer on both servers")
                if len(same) < len(data.patients):
                    print(f"    the load uses the {len(same)} patients with the same answer")
                sessions = {t.name: sessions_for(args.clients) for t in targets}
                for t in targets:  # warm-up, not counted
                    load(t, sessions[t.name], same, args.warmup, seed=999)
                results: dict[str, list[Run]] = {t.name: [] for t in targets}
                for run in range(args.runs):
                    order = targets[run % len(targets):] + targets[:run % len(targets)]
                    for t in order:
                        result = load(t, sessions[t.name], same, args.duration,
                                      seed=setting_no * 100 + run)
                        results[t.name].append(result)
                        print(f"  run {run + 1} {t.name:<13} {result.requests:6d} requests "
                              f"{result.rate:7.1f} req/s  p50 {result.p(.5):6.1f} ms  p99 "
                              f"{result.p(.99):6.1f} ms  (load average "
                              f"{os.getloadavg()[0]:.1f})"
                              + (f"  ERRORS {dict(result.errors)}" if result.errors else ""))
                for group in sessions.values():
                    for s in group:
                        s.close()
                summary.append((label, results))
            finally:
                server.stop()

        print(f"\nmedians of {args.runs} runs, {args.clients} clients, {len(data.patients)} "
              f"patients, {args.duration:g} s per run:")
        for label, results in summary:
            print(f"  {label}")
            for name, runs in results.items():
                print(f"    {name:<13} {describe(runs)}")
            bridge_rate = statistics.median(r.rate for r in results["bridge"])
            for name in results:
                if name != "bridge":
                    rate = statistics.median(r.rate for r in results[name])
                    print(f"    bridge/{name} throughput = {bridge_rate / rate:.2f} "
                          "(target >= 1.00)")

        if not args.no_profile:
            print("\nprofile of the bridge's search, in process (no gunicorn, no HTTP):")
            profile(database_url, token, data.patients, 300)

    load_end = os.getloadavg()
    print(f"load average {load_end[0]:.2f} at end; total {time.perf_counter() - begun:.0f} s; "
          f"{dt.datetime.now().isoformat(timespec='seconds')}")


if __name__ == "__main__":
    main()
