"""Engine creation and migrations (Alembic, run programmatically at start-up).

Check-and-write must be atomic on both databases. PostgreSQL locks the rows a save reads
(``SELECT ... FOR UPDATE``) and refuses a duplicate key with a unique violation. SQLite has no
row locks, and pysqlite on its own opens a transaction only at the first INSERT/UPDATE, so a
version read before it would not be protected. Here pysqlite's transaction handling is turned
off (SQLAlchemy's documented pysqlite recipe) and the transaction is opened by the "begin"
event instead: ``engine.begin()``, which every writer uses, emits ``BEGIN IMMEDIATE``, taking
SQLite's one write lock before the first read, so a second writer waits (up to the busy
timeout) and then reads what the first one committed; a connection from ``engine.connect()``,
used for reading, emits a plain (deferred) ``BEGIN`` and never takes the write lock.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

#: How long a SQLite writer waits for another one's transaction to end, in seconds.
SQLITE_BUSY_TIMEOUT = 30

#: Execution option set on the connections of ``engine.begin()`` on SQLite.
_WRITING = "fhir_bridge_writing"

#: SQLSTATE of a unique violation (PostgreSQL), and SQLite's extended result codes for one.
_PG_UNIQUE_VIOLATION = "23505"
_SQLITE_UNIQUE = {"SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"}
#: A transaction the database gave up so that a concurrent one could go on: PostgreSQL's
#: deadlock_detected and serialization_failure; SQLite still locked after the busy timeout.
_PG_LOST_RACE = {"40P01", "40001"}
_SQLITE_LOST_RACE = {"SQLITE_BUSY", "SQLITE_LOCKED"}


def create_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _sqlite_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, connect_args={"check_same_thread": False,
                                                 "timeout": SQLITE_BUSY_TIMEOUT})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        # pysqlite must not BEGIN (lazily, at the first DML) nor COMMIT on its own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if ":memory:" not in url:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        writing = conn.get_execution_options().get(_WRITING, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    engine.begin = functools.partial(_begin_writing, engine)  # type: ignore[method-assign]
    return engine


@contextmanager
def _begin_writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    """``Engine.begin`` on SQLite: the same, in a transaction that holds the write lock from
    its start."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITING: True})
        with conn.begin():
            yield conn


def is_unique_violation(error: sa.exc.IntegrityError) -> bool:
    """Whether an IntegrityError is a duplicate key (a row saved meanwhile by someone else),
    rather than another broken constraint."""
    orig = error.orig
    if getattr(orig, "sqlstate", None) == _PG_UNIQUE_VIOLATION:
        return True
    return getattr(orig, "sqlite_errorname", None) in _SQLITE_UNIQUE


def is_lost_race(error: sa.exc.OperationalError) -> bool:
    """Whether the database aborted this transaction in favour of a concurrent one (a deadlock,
    a serialization failure, a lock held past the busy timeout): retrying later can succeed."""
    orig = error.orig
    if getattr(orig, "sqlstate", None) in _PG_LOST_RACE:
        return True
    return getattr(orig, "sqlite_errorname", None) in _SQLITE_LOST_RACE


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: sa.Engine) -> None:
    """Bring the database to the newest schema (idempotent)."""
    cfg = alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


def schema_state(engine: sa.Engine) -> tuple[str | None, str | None]:
    """(the database's Alembic revision, the newest revision this code has)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head


def dialect_insert(engine: sa.Engine, table: sa.Table):
    """``INSERT`` with ``on_conflict_do_update`` (an upsert) for the two databases served."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"upserts need PostgreSQL or SQLite, not {engine.dialect.name}")
    return insert(table)
