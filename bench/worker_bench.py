"""Push throughput of several `fhir-bridge worker` processes against one, on one PostgreSQL.

The same generated resources (clones of the six fixture documents, as bench/sync_bench.py
makes them) are pushed to the same HAPI server by 1 and by N worker processes
(`fhir-bridge worker --task push`), each run starting from the same store: the store is
built once into a template database and each run gets a fresh copy of it
(``CREATE DATABASE ... TEMPLATE``), and HAPI is emptied ($expunge) before it; neither is timed.

A run is timed from the first worker's first heartbeat (it starts pushing right after it) to
the moment every outbox row is done; the process start-up before that is shown apart. After
each run the server must hold exactly as many resources as the store. Runs of
1 and N alternate (so warm-up and drift favour neither); the figures are medians.

    python bench/worker_bench.py --database-url postgresql+psycopg://USER:PW@127.0.0.1:5433/DB
                                 [--base-url http://127.0.0.1:8090/fhir] [--workers 3]
                                 [--resources 3000] [--runs 3] [--batch-size 100]

The database named in --database-url is a scratch name: it and DB_template are dropped and
made again. It empties the HAPI server before every run: use a private one
(``HAPI_PORT=8097 scripts/hapi-server start``, ``--base-url http://127.0.0.1:8097/fhir``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync_bench import check_loopback, expunge, generate, server_counts  # noqa: E402

from fhir_bridge.app import create_app  # noqa: E402
from fhir_bridge.mapping.document import load_document  # noqa: E402
from fhir_bridge.store import outbox  # noqa: E402
from fhir_bridge.store import tables as t  # noqa: E402

TYPES = ("Patient", "Practitioner", "RelatedPerson", "Condition", "MedicationRequest", "Flag",
         "DetectedIssue", "Observation", "CarePlan", "CareTeam", "Goal")


def admin_engine(url: sa.URL) -> sa.Engine:
    return sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")


def recreate(admin: sa.Engine, name: str, template: str | None = None) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"'
                             + (f' TEMPLATE "{template}"' if template else ""))


def build_template(url: sa.URL, documents: list[dict]) -> int:
    """The store every run starts from: the documents saved, the outbox full. Its resources."""
    app = create_app({"database_url": url.render_as_string(hide_password=False)})
    bridge = app.extensions["fhir_bridge"]
    for document in documents:
        bridge.store.save(load_document(document), source="bench")
    with bridge.engine.connect() as conn:
        resources = conn.execute(sa.select(sa.func.count()).select_from(t.resources).where(
            t.resources.c.deleted.is_(False))).scalar()
    bridge.engine.dispose()
    return resources


def worker_env(url: str, base: str, batch_size: int) -> dict:
    targets = {"bench": {"base_url": base, "batch_size": batch_size}}
    return dict(os.environ, FHIR_BRIDGE_DATABASE_URL=url, FHIR_BRIDGE_SYNC__TARGET="bench",
                FHIR_BRIDGE_SYNC__TARGETS=json.dumps(targets),
                FHIR_BRIDGE_WORKER__PUSH_INTERVAL_SECONDS="0.2",
                FHIR_BRIDGE_WORKER__HEARTBEAT_SECONDS="0.5")


def one_run(url: sa.URL, base: str, workers: int, resources: int, batch_size: int,
            session: requests.Session) -> dict:
    engine = sa.create_engine(url)
    env = worker_env(url.render_as_string(hide_password=False), base, batch_size)
    spawned = time.monotonic()
    processes = [subprocess.Popen(
        [sys.executable, "-m", "fhir_bridge.cli", "worker", "--task", "push", "--name",
         f"bench-{index}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for index in range(workers)]
    started = None
    try:
        while True:
            with engine.connect() as conn:
                if started is None and conn.execute(sa.select(sa.func.count()).select_from(
                        t.worker_heartbeats)).scalar():
                    started = time.monotonic()
            counts = outbox.status_counts(engine)
            if set(counts) - {"pending", "done"}:
                raise SystemExit(f"outbox rows not sent: {counts}")
            if counts.get("pending", 0) == 0:
                break
            if any(p.poll() is not None for p in processes):
                raise SystemExit("a worker ended before the outbox was empty")
            time.sleep(0.05)
        finished = time.monotonic()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
        engine.dispose()
    # every row done means every resource confirmed on the server: with as many there as in
    # the store, none is there twice
    held = sum(server_counts(session, base, list(TYPES)).values())
    if held != resources:
        raise SystemExit(f"the server holds {held} resources, not the {resources} of the store")
    seconds = finished - started
    return {"workers": workers, "seconds": seconds, "startup": started - spawned,
            "rate": resources / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="a scratch PostgreSQL database")
    parser.add_argument("--base-url", default="http://127.0.0.1:8090/fhir")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--resources", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    base = args.base_url.rstrip("/")
    check_loopback(base)
    url = sa.make_url(args.database_url)
    template = url.set(database=f"{url.database}_template")
    admin = admin_engine(url)
    session = requests.Session()

    app = create_app({"database_url": "sqlite://"})
    documents, copies, per_copy = generate(args.resources, app.extensions["fhir_bridge"].mapper)
    recreate(admin, template.database)
    built = time.perf_counter()
    resources = build_template(template, documents)
    print(f"store: {resources} resources ({copies} copies of the fixtures, {per_copy} each), "
          f"built in {time.perf_counter() - built:.0f} s (not timed)", flush=True)

    results: dict[int, list[dict]] = {1: [], args.workers: []}
    for run in range(args.runs):
        order = (1, args.workers) if run % 2 == 0 else (args.workers, 1)
        for workers in order:
            recreate(admin, url.database, template.database)
            expunge(session, base)
            result = one_run(url, base, workers, resources, args.batch_size, session)
            results[workers].append(result)
            print(f"run {run + 1}: {workers} worker(s): {result['seconds']:.1f} s, "
                  f"{result['rate']:.0f} resources/s (start-up {result['startup']:.1f} s)",
                  flush=True)
    expunge(session, base)
    admin.dispose()

    median = {k: statistics.median(r["rate"] for r in v) for k, v in results.items()}
    print(f"\n{platform.node()}: {os.cpu_count()} cores; batch size {args.batch_size}; "
          f"{resources} resources; medians of {args.runs} runs")
    for workers, rate in median.items():
        seconds = statistics.median(r["seconds"] for r in results[workers])
        print(f"  {workers} push worker(s): {rate:.0f} resources/s ({seconds:.1f} s)")
    print(f"  {args.workers} against 1: {median[args.workers] / median[1]:.2f}x")
    print(json.dumps({"median_rate": median, "runs": results}, default=str))


if __name__ == "__main__":
    main()
