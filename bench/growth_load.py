"""Fill a PostgreSQL store with N stored resources, fast, as the save path would have written
them (for ``facade_bench.py --growth``; the timing is in search_growth.py).

1. The six fixture documents, every id and MRN suffixed with the template tag ``-cz0000000``
   (sync_bench.clone_document), are saved through the RecordStore of a real app: records,
   resources, history, outbox, search_index and audit rows, all by the code that serves.
2. Inside PostgreSQL, ``INSERT ... SELECT ... CROSS JOIN generate_series`` copies every row
   of the tables the save wrote for them (records, resources, resource_history, outbox,
   search_index) once per replica k, with ``replace(text, '-cz0000000', '-cz' || lpad(k, 7))``
   on every id, reference, patient id, record JSON and indexed value, which is exactly what
   saving ``clone_document(doc, 'z%07d' % k)`` writes: the suffix has a fixed width, so no
   indexed value changes length (the cut at 200 characters falls where it would). The
   content hash is computed by PostgreSQL (``sha256``) over the template's sorted-key JSON
   with the same replacement (what ``jsonio.content_hash`` hashes). Audit rows of the
   template saves are not copied: no search reads them.
3. :func:`verify`: a few replicas are saved through the real save path into a throwaway
   SQLite store and compared, row by row and column by column (timestamps aside), with what
   the SQL wrote; the searches of search_growth.py are asked of replicated patients and of
   the template ones and must name the same resources.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson
import sqlalchemy as sa

from fhir_bridge.app import build_bridge
from fhir_bridge.clinical.monitoring import derived_id
from fhir_bridge.config import load_config
from fhir_bridge.fhir import jsonio
from fhir_bridge.mapping.document import load_document
from fhir_bridge.store import tables

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync_bench import clone_document, fixture_documents  # noqa: E402

TAG = "-cz0000000"
CHUNK = 100  # replicas per transaction
COPIED = ("records", "resources", "resource_history", "outbox", "search_index")


def copy_no(k: int) -> str:
    """clone_document's copy number of replica k (its ids end in ``-c`` + this)."""
    return f"z{k:07d}"


def suffix(k: int) -> str:
    return "-c" + copy_no(k)


def documents(k: int) -> list[dict]:
    """The six fixture documents as replica k (k = 0: the template)."""
    return [clone_document(doc, copy_no(k)) for _, doc in fixture_documents()]


_DIGESTS: list[str] = []  # the template's digested ids (see _digested), in order


def _rewrite(expr: str) -> str:
    """SQL for a template text as replica s.k: each digested id replaced by the replica's
    (joined from template_digests as d1, d2, ...), then the tag by the suffix."""
    for n in range(1, len(_DIGESTS) + 1):
        expr = f"replace({expr}, :old{n}, d{n}.new)"
    return f"replace({expr}, :tag, s.suffix)"


def _copy_sql() -> dict[str, tuple[str, str]]:
    """Per table: the columns written, and the expression for each (t = template row)."""
    return {
        "records": ("concept, id, patient_id, version, data, created_at, updated_at, source",
                    f"t.concept, {_rewrite('t.id')}, {_rewrite('t.patient_id')}, t.version, "
                    f"{_rewrite('t.data::text')}::json, now(), now(), t.source"),
        "resources": ("resource_type, id, concept, record_id, patient_id, version_id, "
                      "last_updated, content_hash, content, deleted",
                      f"t.resource_type, {_rewrite('t.id')}, t.concept, {_rewrite('t.record_id')}, "
                      f"{_rewrite('t.patient_id')}, t.version_id, now(), "
                      f"encode(sha256(convert_to({_rewrite('t.sorted_json')}, 'UTF8')), 'hex'), "
                      f"{_rewrite('t.content')}, t.deleted"),
        "resource_history": ("resource_type, id, version_id, last_updated, content, deleted, "
                             "source",
                             f"t.resource_type, {_rewrite('t.id')}, t.version_id, now(), "
                             f"{_rewrite('t.content')}, t.deleted, t.source"),
        "outbox": ("resource_type, resource_id, version_id, operation, status, attempts, "
                   "created_at",
                   f"t.resource_type, {_rewrite('t.resource_id')}, t.version_id, t.operation, "
                   "t.status, t.attempts, now()"),
        "search_index": ("resource_type, resource_id, param, system, value",
                         f"t.resource_type, {_rewrite('t.resource_id')}, t.param, "
                         f"{_rewrite('t.system')}, {_rewrite('t.value')}"),
    }


def _drop_tables(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        tables.metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")


def ensure_database(url: str) -> None:
    """CREATE DATABASE for url's database when it does not exist (the role has CREATEDB)."""
    parsed = sa.engine.make_url(url)
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                            {"n": parsed.database}).first():
            conn.exec_driver_sql(f'CREATE DATABASE "{parsed.database}"')
    admin.dispose()


def _count(conn, table: str) -> int:
    return conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar()


def fill(url: str, target: int, reuse: bool) -> tuple[int, int, float]:
    """Make url's database hold the template and its replicas, at least ``target`` resources.
    Returns (replicas including the template, resources, seconds spent loading; 0 when an
    existing load of the same size was reused)."""
    if sa.engine.make_url(url).get_backend_name() != "postgresql":
        raise SystemExit("--growth loads its stores inside PostgreSQL: give --database-url "
                         "postgresql+psycopg://...")
    ensure_database(url)
    started = time.perf_counter()
    engine = sa.create_engine(url)
    per_set = len(_saved_elsewhere(0)["resources"])
    replicas = math.ceil(target / per_set)
    with engine.connect() as conn:
        present = sa.inspect(conn).has_table("resources")
        stored = _count(conn, "resources") if present else 0
    if reuse and stored == replicas * per_set:
        engine.dispose()
        return replicas, stored, 0.0
    _drop_tables(engine)
    engine.dispose()
    config = load_config({"database_url": url, "log_level": "WARNING"})
    bridge = build_bridge(config)  # migrates
    for document in documents(0):
        bridge.store.save(load_document(document), source="bench")
    with bridge.engine.connect() as conn:
        for table in COPIED:
            conn.exec_driver_sql(f"CREATE TEMP TABLE template_{table} AS SELECT * FROM {table}")
        conn.exec_driver_sql("ALTER TABLE template_resources ADD COLUMN sorted_json text")
        for row in conn.execute(sa.text("SELECT resource_type, id, content "
                                        "FROM template_resources")).all():
            conn.execute(sa.text("UPDATE template_resources SET sorted_json = :s "
                                 "WHERE resource_type = :t AND id = :i"),
                         {"s": orjson.dumps(jsonio.loads(row.content),
                                            option=orjson.OPT_SORT_KEYS).decode(),
                          "t": row.resource_type, "i": row.id})
        wrong = conn.exec_driver_sql(
            "SELECT count(*) FROM template_resources WHERE content_hash <> "
            "encode(sha256(convert_to(sorted_json, 'UTF8')), 'hex')").scalar()
        if wrong:
            raise SystemExit(f"{wrong} template hashes differ from sha256(sorted JSON)")
        olds = _digests(conn, replicas)
        conn.commit()
        for lo in range(1, replicas, CHUNK):
            hi = min(lo + CHUNK, replicas) - 1
            for table, (columns, select) in _copy_sql().items():
                conn.execute(sa.text(
                    f"INSERT INTO {table} ({columns}) SELECT {select} FROM template_{table} t "
                    "CROSS JOIN (SELECT k, '-cz' || lpad(k::text, 7, '0') AS suffix "
                    "FROM generate_series(CAST(:lo AS integer), CAST(:hi AS integer)) AS k) s "
                    + "".join(f"JOIN template_digests d{n} ON d{n}.k = s.k AND d{n}.n = {n} "
                              for n in range(1, len(_DIGESTS) + 1))),
                    {"tag": TAG, "lo": lo, "hi": hi, **olds})
            conn.commit()
        stored = _count(conn, "resources")
    bridge.engine.dispose()
    vacuum = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with vacuum.connect() as conn:  # what autovacuum gives a store that grew over time
        conn.exec_driver_sql("VACUUM ANALYZE")
    vacuum.dispose()
    return replicas, stored, time.perf_counter() - started


def _digested(conn) -> list[tuple[str, str]]:
    """(id, what it was made from) of each template record whose id ends in a digest."""
    out = []
    for row in conn.execute(sa.text("SELECT concept, id, data FROM template_records "
                                    r"WHERE id ~ '\.[0-9a-f]{10}$' ORDER BY id")):
        data = row.data
        base = (".".join(data["prescription_ids"]) + "." + data["rule"]
                if row.concept == "detected-issue" else None)
        if base is None or derived_id("", base) != row.id:
            raise SystemExit(f"cannot replicate {row.concept} {row.id!r}: a digested id "
                             "this loader does not know how to remake")
        out.append((row.id, base))
    return out


def _digests(conn, replicas: int) -> dict[str, str]:
    """Fill template_digests (k, n, the replica's id) for every replica; returns the SQL
    parameters old1, old2, ... (the template's ids)."""
    found = _digested(conn)
    _DIGESTS[:] = [old for old, _ in found]
    conn.exec_driver_sql("CREATE TEMP TABLE template_digests (k integer, n integer, new text, "
                         "PRIMARY KEY (k, n))")
    rows = [{"k": k, "n": n, "new": derived_id("", base.replace(TAG, suffix(k)))}
            for k in range(1, replicas) for n, (_, base) in enumerate(found, 1)]
    if rows:
        conn.execute(sa.text("INSERT INTO template_digests VALUES (:k, :n, :new)"), rows)
    return {f"old{n}": old for n, old in enumerate(_DIGESTS, 1)}


# -- verification ------------------------------------------------------------------------------

_COMPARED = {  # table -> the columns compared (not timestamps, not outbox.seq)
    "records": ("concept", "id", "patient_id", "version", "data", "source"),
    "resources": ("resource_type", "id", "concept", "record_id", "patient_id", "version_id",
                  "content_hash", "content", "deleted"),
    "resource_history": ("resource_type", "id", "version_id", "content", "deleted", "source"),
    "outbox": ("resource_type", "resource_id", "version_id", "operation", "status",
               "attempts"),
    "search_index": ("resource_type", "resource_id", "param", "system", "value"),
}
_KEY = {"records": "id", "resources": "id", "resource_history": "id", "outbox": "resource_id",
        "search_index": "resource_id"}
_saved_cache: dict[int, dict[str, Counter]] = {}


def _json_text(value) -> str:
    """records.data as sorted JSON (SQLite hands back text, PostgreSQL's json a dict)."""
    data = orjson.loads(value) if isinstance(value, (str, bytes)) else value
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def _rows(conn, table: str, where: str = "", params: dict | None = None) -> Counter:
    columns = _COMPARED[table]
    out = Counter()
    for row in conn.execute(sa.text(f"SELECT {', '.join(columns)} FROM {table} {where}"),
                            params or {}):
        out[tuple(_json_text(v) if name == "data" else v
                  for name, v in zip(columns, row))] += 1
    return out


def _saved_elsewhere(k: int) -> dict[str, Counter]:
    """The rows the real save path writes for replica k, in a throwaway SQLite store."""
    if k not in _saved_cache:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'k.db'}"
            bridge = build_bridge(load_config({"database_url": url, "log_level": "WARNING"}))
            for document in documents(k):
                bridge.store.save(load_document(document), source="bench")
            with bridge.engine.connect() as conn:
                _saved_cache[k] = {table: _rows(conn, table) for table in _COMPARED}
            bridge.engine.dispose()
    return _saved_cache[k]


def verify_rows(engine: sa.Engine, k: int) -> list[str]:
    """Replica k in the loaded store against the save path's rows: the differences."""
    expected = _saved_elsewhere(k)
    problems = []
    with engine.connect() as conn:
        for table in _COMPARED:
            columns = _COMPARED[table]
            kind = columns[0]  # resource_type or concept: the first column of each key
            ids = sorted({row[columns.index(_KEY[table])] for row in expected[table]})
            kinds = sorted({row[0] for row in expected[table]})
            got = _rows(conn, table, f"WHERE {kind} = ANY(:kinds) AND {_KEY[table]} = ANY(:ids)",
                        {"ids": ids, "kinds": kinds})
            if got != expected[table]:
                missing, extra = expected[table] - got, got - expected[table]
                problems.append(f"replica {k}, {table}: {sum(missing.values())} rows missing, "
                                f"{sum(extra.values())} unexpected; e.g. "
                                f"{str(next(iter(missing or extra)))[:300]}")
    return problems
