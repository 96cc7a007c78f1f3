"""Scale: `fhir-bridge import` then `fhir-bridge sync push` of 10k, 100k, 1M resources.

For each size (resources the generated documents map to), in order:

1. generate (not timed): an NDJSON file of clones of the six fixture documents, every id and
   the patient's MRN suffixed per copy (``sync_bench.clone_document``), enough copies for the
   size; written line by line, never held in memory;
2. reset (not timed): the bridge's tables in ``--database-url`` are DROPPED (and recreated by
   the first command), the target HAPI is emptied with ``$expunge``;
3. import: ``fhir-bridge import <file>`` as a child process under ``/usr/bin/time -v``: wall
   time and peak RSS of that process;
4. push: ``fhir-bridge sync push`` (one worker, the configured batch size) as another child
   process, measured the same way;
5. check: every resource the store holds is on HAPI exactly once (``_summary=count`` per
   type against the store's count per type), and no outbox row is dead.

Figures per size: resources (as stored, derived records included), seconds, resources/s and
ms per resource of each phase, peak RSS of each process in MB; at the end time per resource of
the largest size against the smallest (goal <= 1.5x) and peak RSS against ``--limit-mb``.

    python bench/scale_bench.py --sizes 10000,100000 \
        --database-url postgresql+psycopg://fhir_bridge:fhir_bridge@127.0.0.1:5433/<yours> \
        --base-url http://127.0.0.1:8096/fhir [--phases import,push] [--batch-size 100]
        [--workdir /tmp/scale-bench] [--limit-mb 500] [--sample-seconds 30] [--json results.json]
        [--warmup 5000] [--push-again]

``--warmup N`` imports and pushes N resources first, not counted (HAPI's warm-up).
``--push-again`` imports nothing: the store's outbox is made pending again, the target
emptied, and the push alone is timed.

During each phase a sample every ``--sample-seconds`` prints the slice since the previous one
(rate, wall and CPU ms per resource, RSS), so growth within one run shows.

**It drops the bridge tables of ``--database-url`` and expunges ``--base-url``** before every
size: give it a database and a HAPI of its own (bench/README.md, "Scale"). Only loopback
servers are accepted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import orjson
import requests
import sqlalchemy as sa

from fhir_bridge.app import build_bridge
from fhir_bridge.config import load_config
from facade_bench import reset_database
from sync_bench import (HEADERS, check_loopback, clone_document, expunge, fixture_documents,
                        generate, server_counts, server_facts)

FHIR_BRIDGE = str(Path(sys.executable).with_name("fhir-bridge"))
TARGET = "scale-bench"
_RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
_CPU = re.compile(r"(?:User|System) time \(seconds\): ([\d.]+)")


@dataclass
class Phase:
    seconds: float
    cpu_seconds: float  # user + system of the bridge process (not the database's or HAPI's)
    peak_rss_mb: float
    resources: int

    @property
    def rate(self) -> float:
        return self.resources / self.seconds

    @property
    def ms_per_resource(self) -> float:
        return 1000 * self.seconds / self.resources

    @property
    def cpu_ms_per_resource(self) -> float:
        return 1000 * self.cpu_seconds / self.resources

    def line(self) -> str:
        return (f"{self.seconds:,.1f} s: {self.rate:,.0f} resources/s, {self.ms_per_resource:.3f} "
                f"ms/resource ({self.cpu_ms_per_resource:.3f} ms CPU of the bridge process), "
                f"peak RSS {self.peak_rss_mb:.0f} MB")


def write_documents(path: Path, size: int, mapper) -> tuple[int, int]:
    """Clones of the fixture documents, one per NDJSON line, enough for ``size`` resources.
    Returns (copies, documents)."""
    _, _, per_copy = generate(1, mapper)
    copies = max(1, math.ceil(size / per_copy))
    originals = [doc for _, doc in fixture_documents()]
    with path.open("wb") as out:
        for k in range(copies):
            for doc in originals:
                out.write(orjson.dumps(clone_document(doc, k)) + b"\n")
    return copies, copies * len(originals)


def _child_of(pid: int) -> int | None:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def _cpu_and_rss(pid: int) -> tuple[float, float] | None:
    """(user + system CPU seconds, resident MB) of a running process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks, rss * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_measured(args: list[str], env: dict[str, str], log: Path, done_so_far,
                 every: float) -> tuple[Phase, str, list[dict]]:
    """Run a command under /usr/bin/time -v: (its Phase, its stdout, samples). Every
    ``every`` seconds a sample is taken and printed: ``done_so_far()`` (resources handled),
    and the rate, wall and CPU ms per resource of the slice since the previous sample, and
    the process's RSS, so growth within one run shows."""
    timing, stdout = log.with_suffix(".time"), log.with_suffix(".out")
    started = time.perf_counter()
    samples: list[dict] = []
    last = (started, 0.0, 0)
    with log.open("wb") as err, stdout.open("wb") as out:
        child = subprocess.Popen(["/usr/bin/time", "-v", "-o", str(timing), *args], env=env,
                                 stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        while True:
            try:
                child.wait(timeout=every)
                break
            except subprocess.TimeoutExpired:
                pass
            worker = _child_of(child.pid)
            usage = _cpu_and_rss(worker) if worker else None
            if usage is None:
                continue
            now, count = time.perf_counter(), done_so_far()
            if count > last[2]:
                n = count - last[2]
                sample = {"seconds": round(now - started, 1), "done": count,
                          "slice_rate": n / (now - last[0]),
                          "slice_ms_per_resource": 1000 * (now - last[0]) / n,
                          "slice_cpu_ms_per_resource": 1000 * (usage[0] - last[1]) / n,
                          "rss_mb": usage[1]}
                samples.append(sample)
                print(f"    {sample['seconds']:>8,.0f} s {count:>9,}: {sample['slice_rate']:6,.0f}"
                      f"/s, {sample['slice_ms_per_resource']:7.2f} ms, "
                      f"{sample['slice_cpu_ms_per_resource']:6.2f} ms CPU per resource; "
                      f"RSS {usage[1]:.0f} MB", flush=True)
                last = (now, usage[0], count)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed (exit {child.returncode}); see {log}")
    text = timing.read_text()
    rss, cpu = _RSS.search(text), [float(v) for v in _CPU.findall(text)]
    if rss is None or len(cpu) != 2:
        raise SystemExit(f"no peak RSS or CPU time in {timing}")
    return Phase(seconds, sum(cpu), int(rss.group(1)) / 1024, done_so_far()), \
        stdout.read_text(), samples


def store_counts(url: str) -> tuple[dict[str, int], dict[str, int]]:
    """(live resources per type, outbox rows per status)."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        per_type = dict(conn.execute(sa.text(
            "SELECT resource_type, count(*) FROM resources WHERE NOT deleted "
            "GROUP BY resource_type")).all())
        states = dict(conn.execute(sa.text(
            "SELECT status, count(*) FROM outbox GROUP BY status")).all())
    engine.dispose()
    return per_type, states


def pushed_rows(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        done = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE status = 'done'")).scalar()
    engine.dispose()
    return done


def reset_push(url: str) -> None:
    """The store as an import leaves it: every outbox row pending and unclaimed, nothing known
    of the target (for ``--push-again``)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = NULL, "
            "last_error = NULL, claimed_by = NULL, claimed_until = NULL"))
        conn.execute(sa.text("DELETE FROM remote_resources"))
    engine.dispose()


def push_again(opts, env: dict[str, str], session) -> dict:
    """Push the store ``--database-url`` holds (an earlier run's import) again, to an emptied
    target."""
    reset_push(opts.database_url)
    expunge(session, opts.base_url)
    per_type, statuses = store_counts(opts.database_url)
    resources = sum(per_type.values())
    print(f"\n{resources:,} resources stored, {sum(statuses.values()):,} outbox rows, all "
          "pending again; target emptied", flush=True)
    result: dict = {"size": resources, "outbox_rows": sum(statuses.values())}
    phase, out, result["push_samples"] = run_measured(
        [FHIR_BRIDGE, "sync", "push", "--target", TARGET, "--worker", "scale-bench"], env,
        opts.workdir / f"push-again-{resources}.log", lambda: pushed_rows(opts.database_url),
        opts.sample_seconds)
    pushed = json.loads(out)
    per_type, statuses = store_counts(opts.database_url)
    on_server = server_counts(session, opts.base_url, sorted(per_type))
    if on_server != per_type or statuses.get("dead"):
        raise SystemExit(f"push: server holds {on_server}, store {per_type}, outbox {statuses}")
    result["push"] = replace(phase, resources=resources)
    print(f"  push    {resources:,} resources ({result['outbox_rows']:,} outbox rows, "
          f"{pushed['sent']:,} sent) in {phase.line()}; on HAPI: exactly the store's",
          flush=True)
    return result


def one_size(size: int, opts, env: dict[str, str], mapper, session) -> dict:
    workdir = opts.workdir
    docs = workdir / f"documents-{size}.ndjson"
    t0 = time.perf_counter()
    copies, documents = write_documents(docs, size, mapper)
    print(f"\n{size:,}: {copies:,} copies of the fixtures, {documents:,} documents, "
          f"{docs.stat().st_size / 1e6:.0f} MB ({time.perf_counter() - t0:.0f} s to write)",
          flush=True)
    reset_database(opts.database_url)  # (a SQLite URL: give a new file)
    if "push" in opts.phases:
        expunge(session, opts.base_url)
    result: dict = {"size": size, "copies": copies}

    def stored() -> int:
        return sum(store_counts(opts.database_url)[0].values())

    phase, out, result["import_samples"] = run_measured(
        [FHIR_BRIDGE, "import", str(docs)], env, workdir / f"import-{size}.log", stored,
        opts.sample_seconds)
    report = json.loads(out)
    if report["failed"]:
        raise SystemExit(f"import: {len(report['failed'])} documents failed: "
                         f"{report['failed'][:3]}")
    result["records"] = report["records_added"]
    result["import"] = phase
    print(f"  import  {phase.resources:,} resources ({report['records_added']:,} records) in "
          f"{phase.line()}", flush=True)

    if "push" in opts.phases:  # (the target was expunged above)
        result["outbox_rows"] = sum(store_counts(opts.database_url)[1].values())
        phase, out, result["push_samples"] = run_measured(
            [FHIR_BRIDGE, "sync", "push", "--target", TARGET, "--worker", "scale-bench"], env,
            workdir / f"push-{size}.log", lambda: pushed_rows(opts.database_url),
            opts.sample_seconds)
        pushed = json.loads(out)
        per_type, statuses = store_counts(opts.database_url)
        on_server = server_counts(session, opts.base_url, sorted(per_type))
        if on_server != per_type or statuses.get("dead"):
            raise SystemExit(f"push: server holds {on_server}, store {per_type}, "
                             f"outbox {statuses}")
        result["push"] = replace(phase, resources=result["import"].resources)
        print(f"  push    {phase.resources:,} resources ({result['outbox_rows']:,} outbox rows, "
              f"{pushed['sent']:,} sent) in {phase.line()}; on HAPI: exactly the store's",
              flush=True)
    docs.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000",
                        help="resources per run, comma-separated (default 10000,100000)")
    parser.add_argument("--database-url", required=True,
                        help="the bridge's database; its bridge tables are DROPPED")
    parser.add_argument("--base-url", default="http://127.0.0.1:8096/fhir",
                        help="the target HAPI; it is EXPUNGED")
    parser.add_argument("--phases", default="import,push", help="import or import,push")
    parser.add_argument("--batch-size", type=int, default=100, help="entries per bundle")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/scale-bench"))
    parser.add_argument("--limit-mb", type=float, default=500, help="peak RSS goal per process")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--push-again", action="store_true",
                        help="no import: push the store --database-url holds (an earlier "
                             "run's) again, every outbox row made pending and the target "
                             "emptied; --sizes is ignored")
    parser.add_argument("--warmup", type=int, default=5000,
                        help="resources imported and pushed first, not counted, so that the "
                             "first size does not pay for HAPI's warm-up (0: none)")
    parser.add_argument("--sample-seconds", type=float, default=30,
                        help="seconds between the samples taken during each phase")
    opts = parser.parse_args()
    check_loopback(opts.base_url)
    opts.phases = set(opts.phases.split(","))
    sizes = [int(s) for s in opts.sizes.split(",")]
    opts.workdir.mkdir(parents=True, exist_ok=True)

    config = {"database_url": opts.database_url,
              "sync": {"target": TARGET, "batch_size": opts.batch_size,
                       "targets": {TARGET: {"base_url": opts.base_url,
                                            "auth": {"type": "none"}}}}}
    config_file = opts.workdir / "bench-config.json"  # JSON is YAML
    config_file.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_BRIDGE_")}
    env["FHIR_BRIDGE_CONFIG"] = str(config_file)
    mapper = build_bridge(load_config({"database_url": "sqlite://"})).mapper

    session = requests.Session()
    session.headers.update(HEADERS)
    session.trust_env = False  # loopback only: never through a proxy
    pushing = "push" in opts.phases
    target = server_facts(session, opts.base_url) if pushing else "none (import only)"
    print(f"{dt.date.today()} {platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; target {target}; "
          f"store {sa.engine.make_url(opts.database_url).get_backend_name()}; "
          f"batch size {opts.batch_size}")
    if opts.push_again:
        result = push_again(opts, env, session)
        if opts.json:
            opts.json.write_text(json.dumps({**result, "push": {
                **asdict(result["push"]), "rate": result["push"].rate,
                "ms_per_resource": result["push"].ms_per_resource,
                "cpu_ms_per_resource": result["push"].cpu_ms_per_resource}}, indent=2))
        return
    if pushing and opts.warmup:
        # HAPI compiles its hot paths in the first minutes (a first 10k push on a fresh HAPI
        # ran at 143 resources/s, the next 100k at 201/s): warm it, not counted.
        print(f"\nwarm-up (not counted): {opts.warmup:,} resources imported and pushed",
              flush=True)
        one_size(opts.warmup, opts, env, mapper, session)
    results = [one_size(size, opts, env, mapper, session) for size in sizes]
    if pushing:
        expunge(session, opts.base_url)

    first, last = results[0], results[-1]
    for phase in ("import", "push"):
        if phase not in first:
            continue
        growth = last[phase].ms_per_resource / first[phase].ms_per_resource
        cpu = last[phase].cpu_ms_per_resource / first[phase].cpu_ms_per_resource
        peak = max(r[phase].peak_rss_mb for r in results)
        print(f"{phase}: ms/resource at {last['size']:,} / at {first['size']:,} = {growth:.2f} "
              f"(goal <= 1.5; bridge CPU ms/resource {cpu:.2f}); peak RSS {peak:.0f} MB "
              f"(goal < {opts.limit_mb:.0f})")
    if opts.json:
        opts.json.write_text(json.dumps([
            {k: ({**asdict(v), "rate": v.rate, "ms_per_resource": v.ms_per_resource,
                  "cpu_ms_per_resource": v.cpu_ms_per_resource}
                 if isinstance(v, Phase) else v) for k, v in r.items()} for r in results],
            indent=2))


if __name__ == "__main__":
    main()
