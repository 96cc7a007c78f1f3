"""Search cost as the store grows (``facade_bench.py --growth 10000,100000,1000000``).

One PostgreSQL database per size (``<database>_<size>``, created when missing), each filled by
growth_load.py (the six fixture documents saved through the RecordStore as a template, then
replicated inside PostgreSQL as the save path would have written them) and checked against
the save path before anything is timed. Then, in process (Flask test client, a system/*.rs
token, the AuditEvent of every search written as in production), one request at a time:

- ``care-plan``: ``CarePlan?patient=X`` with the four ``_include``s and
  ``_include:iterate=CareTeam:participant`` (the EHR's care-plan view);
- ``obs-patient-code``: ``Observation?patient=X&code=http://loinc.org|29463-7`` (body weight);
- ``rx-active``: ``MedicationRequest?status=active`` (first page of 50 and the exact total;
  its result grows with the store, so this one's cost may too).

X is a random patient of the store (one with body weights for obs-patient-code). The sizes
are measured interleaved: every run asks each size ``requests`` times per search, the order
of the sizes rotating from run to run, so load from elsewhere on the machine falls on all
sizes alike; p50 and p99 are the medians over the runs, ratios against the smallest size.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from fhir_bridge.app import create_app
from fhir_bridge.auth.mint import dev_issuer, mint_token

sys.path.insert(0, str(Path(__file__).resolve().parent))
import growth_load  # noqa: E402
from sync_bench import percentile  # noqa: E402

QUERIES = {
    "care-plan": "CarePlan?patient={patient}&_include=CarePlan:care-team&_include=CarePlan:goal"
                 "&_include=CarePlan:activity-reference&_include=CarePlan:condition"
                 "&_include:iterate=CareTeam:participant",
    "obs-patient-code": "Observation?patient={patient}&code=http://loinc.org|29463-7",
    "rx-active": "MedicationRequest?status=active",
}
WEIGHT = "29463-7"
WARMUP = 10


@dataclass
class Store:
    size: int  # the size asked for
    url: str
    replicas: int
    resources: int
    load_seconds: float
    app: object = None
    patients: tuple[list[str], list[str]] = ([], [])  # (every patient, those with weights)


def sized_url(url: str, size: int) -> str:
    parsed = sa.engine.make_url(url)
    label = f"{size // 1_000_000}m" if size % 1_000_000 == 0 else (
        f"{size // 1000}k" if size % 1000 == 0 else str(size))
    return parsed.set(database=f"{parsed.database}_{label}").render_as_string(
        hide_password=False)


def _template_patients(app) -> tuple[list[str], list[str]]:
    """Patient ids of the template (replica 0), and those with body weights."""
    with app.extensions["fhir_bridge"].engine.connect() as conn:
        everyone = conn.scalars(sa.text(
            "SELECT id FROM resources WHERE resource_type = 'Patient' AND id LIKE :t"),
            {"t": f"%{growth_load.TAG}"}).all()
        weighed = conn.scalars(sa.text(
            "SELECT DISTINCT p.id FROM resources p JOIN resources o ON o.patient_id = "
            "p.patient_id AND o.resource_type = 'Observation' WHERE p.resource_type = "
            "'Patient' AND p.id LIKE :t AND o.content LIKE :w"),
            {"t": f"%{growth_load.TAG}", "w": f'%"{WEIGHT}"%'}).all()
    return sorted(everyone), sorted(weighed)


def _ask(client, headers, url: str) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.get("/fhir/" + url, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{url}: HTTP {response.status_code} {response.get_data(True)[:300]}")
    return elapsed, response.get_json()


def _names(bundle: dict, k: int) -> tuple[int, list[tuple[str, str, str]]]:
    """(total, entries as (mode, type, id with replica k's suffix taken back to the tag))."""
    entries = sorted((e["search"]["mode"], e["resource"]["resourceType"],
                      e["resource"]["id"].replace(growth_load.suffix(k), growth_load.TAG))
                     for e in bundle.get("entry", []))
    return bundle.get("total", -1), entries


def verify_searches(store: Store, token: str, ks: list[int]) -> list[str]:
    """The patient-scoped searches name the same resources for replicas ks as for the
    template (and the template's answers are not empty)."""
    client = store.app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    problems = []
    everyone, weighed = store.patients
    for name in ("care-plan", "obs-patient-code"):
        for patient in (weighed if name == "obs-patient-code" else everyone):
            _, bundle = _ask(client, headers, QUERIES[name].format(patient=patient))
            template = _names(bundle, 0)
            if not template[1]:
                problems.append(f"{name} for template {patient}: no entries")
            for k in ks:
                other = patient.replace(growth_load.TAG, growth_load.suffix(k))
                _, bundle = _ask(client, headers, QUERIES[name].format(patient=other))
                if _names(bundle, k) != template:
                    problems.append(f"{name} for {other}: {_names(bundle, k)[:2]} differs "
                                    f"from the template's {template[:2]}")
    return problems


def blocks(store: Store, token: str, patients: int = 5) -> dict[str, tuple[float, float]]:
    """Search -> (SQL statements, PostgreSQL buffer pages the SELECTs touch), medians over a
    few patients: the work of one search, whatever else the machine is doing. Each SELECT a
    search ran is run again under EXPLAIN (ANALYZE, BUFFERS); the top plan node's shared
    hit + read blocks include every node below it."""
    engine = store.app.extensions["fhir_bridge"].engine
    client = store.app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    seen: list[tuple[str, object]] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    everyone, weighed = store.patients
    rng = random.Random(11)
    out = {}
    for name, template in QUERIES.items():
        counts, pages = [], []
        for _ in range(patients):
            base = rng.choice(weighed if name == "obs-patient-code" else everyone)
            patient = base.replace(growth_load.TAG, growth_load.suffix(
                rng.randrange(store.replicas)))
            seen.clear()
            sa.event.listen(engine, "before_cursor_execute", note)
            try:
                _ask(client, headers, template.format(patient=patient))
            finally:
                sa.event.remove(engine, "before_cursor_execute", note)
            statements = list(seen)
            total = 0
            with engine.connect() as conn:
                for statement, parameters in statements:
                    if statement.lstrip().upper().startswith("SELECT"):
                        plan = conn.exec_driver_sql(
                            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement,
                            parameters).scalar()[0]["Plan"]
                        total += plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
            counts.append(len(statements))
            pages.append(total)
        out[name] = (statistics.median(counts), statistics.median(pages))
    return out


def prepare(database_url: str, sizes: list[int], reuse: bool, token_for) -> list[Store]:
    stores = []
    for size in sizes:
        url = sized_url(database_url, size)
        replicas, resources, seconds = growth_load.fill(url, size, reuse)
        store = Store(size, url, replicas, resources, seconds)
        store.app = create_app({"database_url": url, "log_level": "WARNING"})
        store.patients = _template_patients(store.app)
        engine = store.app.extensions["fhir_bridge"].engine
        ks = sorted({1, replicas // 2, replicas - 1} - {0})
        problems = [p for k in ks for p in growth_load.verify_rows(engine, k)]
        problems += verify_searches(store, token_for(store.app), ks)
        status = "reused" if not seconds else f"loaded in {seconds:.0f} s"
        print(f"  {sa.engine.make_url(url).database}: {resources:,} resources "
              f"({replicas:,} replicas of the template), {status}; replicas {ks} checked "
              f"against the save path and the template's searches: "
              + ("OK" if not problems else f"{len(problems)} PROBLEMS"), flush=True)
        for problem in problems[:10]:
            print(f"    {problem}")
        if problems:
            raise SystemExit("the loaded store is not what the save path writes")
        stores.append(store)
    return stores


def _one_run(store: Store, token: str, requests_n: int, rng: random.Random,
             warm: bool) -> dict[str, tuple[list[float], list[int]]]:
    client = store.app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    everyone, weighed = store.patients
    out = {}
    for name, template in QUERIES.items():
        timings, sizes = [], []
        for i in range(requests_n + (WARMUP if warm else 0)):
            base = rng.choice(weighed if name == "obs-patient-code" else everyone)
            patient = base.replace(growth_load.TAG, growth_load.suffix(
                rng.randrange(store.replicas)))
            elapsed, bundle = _ask(client, headers, template.format(patient=patient))
            if warm and i < WARMUP:
                continue
            timings.append(elapsed)
            sizes.append(len(bundle.get("entry", [])))
        out[name] = (timings, sizes)
    return out


def run_growth(database_url: str, sizes: list[int], requests_n: int, runs: int, reuse: bool,
               dev_secret: str) -> list[tuple]:
    """(store, query, p50 median, p99 median, entries per answer, p99 per run, SQL
    statements, buffer pages) per size and query."""
    import os

    os.environ["FHIR_BRIDGE_DEV_SECRET"] = dev_secret

    def token_for(app) -> str:
        issuer = dev_issuer(app.extensions["fhir_bridge"].config["auth"])
        return mint_token(dev_secret, issuer["issuer"], issuer["audience"], ["system/*.rs"],
                          subject="search-growth", ttl_seconds=6 * 3600)

    stores = prepare(database_url, sizes, reuse, token_for)
    tokens = [token_for(s.app) for s in stores]
    rng = random.Random(7)
    per_run: dict[tuple[int, str], list[tuple[float, float]]] = {}
    entries: dict[tuple[int, str], list[int]] = {}
    for run in range(runs):
        order = list(range(len(stores)))
        order = order[run % len(order):] + order[:run % len(order)]
        for i in order:
            result = _one_run(stores[i], tokens[i], requests_n, rng, warm=run == 0)
            for name, (timings, counts) in result.items():
                per_run.setdefault((i, name), []).append(
                    (percentile(timings, .5), percentile(timings, .99)))
                entries.setdefault((i, name), []).extend(counts)
        print(f"  run {run + 1}: " + "; ".join(
            f"{stores[i].size:,} {name} p50 {per_run[(i, name)][-1][0]:.1f} p99 "
            f"{per_run[(i, name)][-1][1]:.1f}" for i in range(len(stores)) for name in QUERIES),
            flush=True)
    rows = []
    for i, store in enumerate(stores):
        work = blocks(store, tokens[i])
        for name in QUERIES:
            pairs = per_run[(i, name)]
            rows.append((store, name, statistics.median(p for p, _ in pairs),
                         statistics.median(p for _, p in pairs),
                         statistics.mean(entries[(i, name)]), [p for _, p in pairs],
                         *work[name]))
    for store in stores:
        store.app.extensions["fhir_bridge"].engine.dispose()
    return rows
