"""Search cost as the store grows (``facade_bench.py --growth 10000,100000``).

The store is filled with clones of the FHIR resources the six fixture documents map to (the
real mapping, once, through the RecordStore; then every id, reference and internal patient id
suffixed ``-g<k>`` per clone), written as the store writes them: a ``resources`` row and its
``search_index`` rows (facade/indexing.py), in batches. History rows and the outbox are left
out: no search reads them. At each size, in process (Flask test client, a system/*.rs token,
the AuditEvent of every search written as in production), one request at a time:

- ``care-plan``: ``CarePlan?patient=X`` with the four ``_include``s and
  ``_include:iterate=CareTeam:participant`` (the EHR's care-plan view);
- ``obs-patient-code``: ``Observation?patient=X&code=http://loinc.org|29463-7`` (body weight);
- ``rx-active``: ``MedicationRequest?status=active`` (first page of 50; its total grows with
  the store, so this one's result grows too).

X is a random patient of the clones (one that has body weights for obs-patient-code).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from fhir_bridge.app import create_app
from fhir_bridge.auth.mint import dev_issuer, mint_token
from fhir_bridge.facade import indexing
from fhir_bridge.fhir import jsonio
from fhir_bridge.mapping.document import load_document
from fhir_bridge.store import tables

QUERIES = {
    "care-plan": "CarePlan?patient={patient}&_include=CarePlan:care-team&_include=CarePlan:goal"
                 "&_include=CarePlan:activity-reference&_include=CarePlan:condition"
                 "&_include:iterate=CareTeam:participant",
    "obs-patient-code": "Observation?patient={patient}&code=http://loinc.org|29463-7",
    "rx-active": "MedicationRequest?status=active",
}
BATCH = 2_000


def fixture_rows(documents: list[dict]) -> list[dict]:
    """The resources rows the fixture documents map to (through a throwaway SQLite store)."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"database_url": f"sqlite:///{Path(tmp) / 'seed.db'}"})
        bridge = app.extensions["fhir_bridge"]
        for document in documents:
            bridge.store.save(load_document(document), source="bench")
        with bridge.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(
                sa.select(tables.resources).where(tables.resources.c.deleted.is_(False)))]
        bridge.engine.dispose()
    return rows


def _renamer(ids: set[str], suffix: str):
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str):
            if node in ids:
                return node + suffix
            head, _, tail = node.rpartition("/")
            if head and tail in ids and head[-1:].isalpha():
                return node + suffix
        return node
    return walk


def clone_rows(seed: list[dict], copy_no: int, now) -> tuple[list[dict], list[dict]]:
    """(resources rows, search_index rows) of one clone of the seed."""
    ids = {row["id"] for row in seed}
    suffix = f"-g{copy_no}"
    walk = _renamer(ids, suffix)
    resources, index = [], []
    for row in seed:
        resource = walk(orjson.loads(row["content"]))
        resources.append(dict(
            row, id=row["id"] + suffix, record_id=row["record_id"] + suffix,
            patient_id=None if row["patient_id"] is None else row["patient_id"] + suffix,
            version_id=1, last_updated=now, content=jsonio.dumps(resource),
            content_hash=jsonio.content_hash(resource)))
        index += [dict(resource_type=row["resource_type"], resource_id=row["id"] + suffix,
                       param=param, system=system, value=value)
                  for param, system, value in indexing.entries(resource)]
    return resources, index


def grow(engine: sa.Engine, seed: list[dict], start: int, target: int) -> int:
    """Add clones from number ``start`` until the store holds ``target`` resources; returns
    the next clone number."""
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    copy_no = start
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(tables.resources)).scalar()
    while stored < target:
        resources, index = [], []
        while len(resources) < BATCH and stored + len(resources) < target:
            more, more_index = clone_rows(seed, copy_no, now)
            resources += more
            index += more_index
            copy_no += 1
        with engine.begin() as conn:
            conn.execute(tables.resources.insert(), resources)
            for at in range(0, len(index), 10 * BATCH):
                conn.execute(tables.search_index.insert(), index[at:at + 10 * BATCH])
        stored += len(resources)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")  # fresh planner statistics, both databases
    return copy_no


def measure(app, token: str, patients: list[str], weighed: list[str], requests_n: int,
            rng: random.Random) -> dict[str, tuple[float, float, float]]:
    """name -> (p50 ms, p99 ms, mean entries per answer)."""
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    out = {}
    for name, template in QUERIES.items():
        timings, sizes = [], []
        for i in range(requests_n + 10):
            patient = rng.choice(weighed if name == "obs-patient-code" else patients)
            started = time.perf_counter()
            response = client.get("/fhir/" + template.format(patient=patient), headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{name}: HTTP {response.status_code}")
            if i >= 10:  # the first ten warm caches
                timings.append(elapsed)
                sizes.append(len(response.get_json().get("entry", [])))
        timings.sort()
        out[name] = (statistics.median(timings), timings[int(len(timings) * 0.99) - 1],
                     statistics.mean(sizes))
    return out


def run_growth(database_url: str, documents: list[dict], sizes: list[int], requests_n: int,
               dev_secret: str) -> list[tuple[int, str, float, float, float]]:
    """(stored resources, query, p50, p99, entries) per size and query."""
    import os

    os.environ["FHIR_BRIDGE_DEV_SECRET"] = dev_secret
    seed = fixture_rows(documents)
    app = create_app({"database_url": database_url, "log_level": "WARNING"})
    engine = app.extensions["fhir_bridge"].engine
    issuer = dev_issuer(app.extensions["fhir_bridge"].config["auth"])
    token = mint_token(dev_secret, issuer["issuer"], issuer["audience"], ["system/*.rs"],
                       subject="search-growth", ttl_seconds=6 * 3600)
    seed_patients = [r["id"] for r in seed if r["resource_type"] == "Patient"]
    weighed_seed = sorted({orjson.loads(r["content"])["subject"]["reference"].split("/")[1]
                           for r in seed if r["resource_type"] == "Observation"
                           and "29463-7" in r["content"]})
    rng = random.Random(7)
    rows, copy_no = [], 0
    for size in sizes:
        started = time.perf_counter()
        copy_no = grow(engine, seed, copy_no, size)
        print(f"  {size:>9,} resources stored ({copy_no} clones, "
              f"{time.perf_counter() - started:.0f} s to add)", flush=True)
        patients = [f"{p}-g{k}" for k in range(copy_no) for p in seed_patients]
        weighed = [f"{p}-g{k}" for k in range(copy_no) for p in weighed_seed]
        for name, (p50, p99, entries) in measure(app, token, patients, weighed, requests_n,
                                                 rng).items():
            rows.append((size, name, p50, p99, entries))
            print(f"    {name:<18} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
                  f"{entries:5.1f} entries", flush=True)
    engine.dispose()
    return rows
