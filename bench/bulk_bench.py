"""Bulk Data export in bounded memory: a system ``$export`` of ``--patients`` patients (about
50 resources each) from kick-off to downloaded NDJSON, with the peak RSS of the process.

Setup (not measured): the six fixture documents are saved through the API into a fresh
database, then their stored resources are cloned straight into the ``resources`` table until
``--patients`` patients exist (every id and reference gets a ``-k<n>`` suffix, the patients'
internal ids too), so the store holds ``--patients`` x ~50 resources.

Measured, in a fresh child process (so nothing of the setup counts): the app is created on that
database (RSS "app"), a system token kicks off ``GET /fhir/$export``, ``Exporter.run_once()``
writes the files, and every file of the manifest is downloaded through the app in 64 KiB
chunks, counting lines. Reported: resources exported, files, seconds for the export and the
download, RSS after the app loaded and the peak RSS of the whole process (VmHWM), in MB. The
export is checked to hold exactly the resources stored; the script fails when the peak is at
or over ``--limit-mb`` (300).

    python bench/bulk_bench.py [--patients 1000] [--database-url URL-of-an-empty-database]
        [--limit-mb 300]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from fhir_bridge import PROJECT_ROOT
from fhir_bridge.fhir import jsonio

SECRET = "bulk-bench-secret-0123456789abcdef-0123456789"
FIXTURES = PROJECT_ROOT / "fixtures" / "internal"


def _vm(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _config(database_url: str, out_dir: str) -> dict:
    return {"database_url": database_url, "bulk": {"output_dir": out_dir}}


def _token(app, scope: str) -> str:
    from fhir_bridge.auth.mint import mint_dev_token

    return mint_dev_token(app.extensions["fhir_bridge.auth"].settings, [scope],
                          environ={"FHIR_BRIDGE_DEV_SECRET": SECRET}, ttl_seconds=3600)


def _relabel(node, ids: dict[str, str]):
    """Every ``Type/id`` reference of the fixture set, pointed at the clone."""
    if isinstance(node, dict):
        return {k: (ids.get(v, v) if k == "reference" and isinstance(v, str)
                    else _relabel(v, ids)) for k, v in node.items()}
    if isinstance(node, list):
        return [_relabel(v, ids) for v in node]
    return node


def build(database_url: str, patients: int) -> int:
    """Fill the store; the number of resources it holds."""
    from fhir_bridge.app import create_app

    app = create_app(_config(database_url, tempfile.mkdtemp()))
    client = app.test_client()
    headers = {"Authorization": "Bearer " + _token(app, "system/*.cruds")}
    for path in sorted(FIXTURES.glob("*.json")):
        answer = client.post("/api/v1/documents", json=json.loads(path.read_text()),
                             headers=headers)
        assert answer.status_code == 200, answer.get_json()
    engine = app.extensions["fhir_bridge"].engine
    table = sa.Table("resources", sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(table))]
    originals = sum(1 for r in rows if r["resource_type"] == "Patient")
    copies = -(-patients // originals) - 1
    # Practitioners are shared by every copy (they are the practice's clinicians).
    cloned = [r for r in rows if r["resource_type"] != "Practitioner"]
    for k in range(1, copies + 1):
        ids = {f"{r['resource_type']}/{r['id']}": f"{r['resource_type']}/{r['id']}-k{k}"
               for r in cloned}
        batch = []
        for row in cloned:
            doc = _relabel(jsonio.loads(row["content"]), ids)
            doc["id"] = f"{row['id']}-k{k}"
            content = jsonio.dumps(doc)
            batch.append({**row, "id": doc["id"], "record_id": f"{row['record_id']}-k{k}",
                          "patient_id": f"{row['patient_id']}-k{k}" if row["patient_id"]
                          else None, "content": content,
                          "content_hash": hashlib.sha256(content.encode()).hexdigest()})
        with engine.begin() as conn:
            conn.execute(table.insert(), batch)
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(table).where(
            table.c.deleted.is_(False))).scalar()
        people = conn.execute(sa.select(sa.func.count()).select_from(table).where(
            table.c.resource_type == "Patient")).scalar()
    engine.dispose()
    print(f"store: {people} patients, {total} resources", flush=True)
    return total


def measure(database_url: str, out_dir: str) -> dict:
    """The child process: one export from kick-off to downloaded files."""
    from fhir_bridge.app import create_app
    from fhir_bridge.bulk.worker import Exporter

    app = create_app(_config(database_url, out_dir))
    client = app.test_client()
    rss_app = _vm("VmRSS")
    headers = {"Authorization": "Bearer " + _token(app, "system/*.rs")}
    started = time.perf_counter()
    kick = client.get("/fhir/$export", headers={**headers, "Prefer": "respond-async"})
    assert kick.status_code == 202, kick.get_json()
    status_path = kick.headers["Content-Location"].removeprefix("http://localhost")
    bridge = app.extensions["fhir_bridge"]
    Exporter(bridge.engine, bridge.config).run_once()
    exported = time.perf_counter()
    status = client.get(status_path, headers=headers)
    assert status.status_code == 200, status.get_json()
    manifest = json.loads(status.get_data())
    lines = 0
    for item in manifest["output"]:
        answer = client.get(item["url"].removeprefix("http://localhost"), headers=headers,
                            buffered=False)
        assert answer.status_code == 200
        counted = 0
        for chunk in answer.response:
            counted += chunk.count(b"\n")
        answer.close()
        assert counted == item["count"], item
        lines += counted
    downloaded = time.perf_counter()
    bridge.engine.dispose()
    return {"resources": lines, "files": len(manifest["output"]),
            "export_s": round(exported - started, 2),
            "download_s": round(downloaded - exported, 2),
            "rss_app_mb": round(rss_app, 1), "peak_rss_mb": round(_vm("VmHWM"), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--database-url")
    parser.add_argument("--limit-mb", type=float, default=300)
    parser.add_argument("--measure", nargs=2, metavar=("DATABASE_URL", "OUT_DIR"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["FHIR_BRIDGE_DEV_SECRET"] = SECRET
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    work = Path(tempfile.mkdtemp(prefix="bulk-bench-"))
    try:
        database_url = args.database_url or f"sqlite:///{work / 'bridge.db'}"
        stored = build(database_url, args.patients)
        child = subprocess.run([sys.executable, __file__, "--measure", database_url,
                                str(work / "exports")], capture_output=True, text=True,
                               check=True, env={**os.environ, "FHIR_BRIDGE_LOG_LEVEL": "WARNING"})
        result = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if result["resources"] != stored:
        sys.exit(f"exported {result['resources']} resources, the store holds {stored}")
    if result["peak_rss_mb"] >= args.limit_mb:
        sys.exit(f"peak RSS {result['peak_rss_mb']} MB is not under {args.limit_mb} MB")
    print(f"OK: {stored} resources exported, peak RSS {result['peak_rss_mb']} MB "
          f"(limit {args.limit_mb:g} MB)")


if __name__ == "__main__":
    main()
