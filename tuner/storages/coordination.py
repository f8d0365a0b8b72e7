"""Locks in the study's own database, so that what must happen once per study does.

Optuna gives no mutual exclusion between workers (``enqueue_trial`` from several at once
duplicates trials; two processes creating the tables on a fresh PostgreSQL database collide on
``pg_type``). Every "check, then create" of the tuner — the tables, the study's preparation and
starting points, a host's baseline, the MLflow parent run, the end of the study — runs inside
``database_lock(url_or_engine, name)``:

- PostgreSQL: a session-level advisory lock (``pg_advisory_lock``) keyed by a 64-bit hash of the
  name, on a connection of its own; the server releases it if the holder dies.
- SQLite: an exclusive ``flock`` on ``locks/<database file name>.<name hash>.lock`` in the
  database's directory (``<runs-dir>/locks/`` for the default store; released by the kernel if
  the holder dies). The files stay (removing a file another process may be waiting on would
  let two hold the lock), one per lock name, all in that one directory; an in-memory database
  uses a process lock.
- MySQL: ``GET_LOCK(name)``. Optuna's in-memory storage: a process lock.

Critical sections are short (queries and inserts; the preparation of assets the first time):
never hold a lock while measuring.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import threading
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

_PROCESS_LOCKS: dict[str, threading.RLock] = {}
_HELD = threading.local()  # names this thread holds: a nested acquisition is a no-op
SCHEMA_LOCK = "tuner-schema"


def lock_key(name: str) -> int:
    """A signed 64-bit integer for ``name`` (PostgreSQL advisory lock keys are bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _process_lock(name: str) -> threading.RLock:
    return _PROCESS_LOCKS.setdefault(name, threading.RLock())


@contextlib.contextmanager
def database_lock(target: str | sa.engine.Engine | None, name: str) -> Iterator[None]:
    """Hold the lock ``name`` of the database at ``target`` (URL or engine; None: this
    process only) for the duration of the block; re-entrant within a thread."""
    held = _HELD.__dict__.setdefault("names", set())
    if name in held:
        yield
        return
    held.add(name)
    try:
        with _acquired(target, name):
            yield
    finally:
        held.discard(name)


@contextlib.contextmanager
def _acquired(target: str | sa.engine.Engine | None, name: str) -> Iterator[None]:
    engine = sa.create_engine(target, poolclass=sa.pool.NullPool) if isinstance(target, str) else target
    try:
        dialect = engine.dialect.name if engine is not None else ""
        if dialect == "postgresql":
            with _advisory(engine, name):
                yield
        elif dialect == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            with _file_lock(Path(engine.url.database), name):
                yield
        elif dialect in ("mysql", "mariadb"):
            with _mysql_lock(engine, name):
                yield
        else:
            with _process_lock(name):
                yield
    finally:
        if isinstance(target, str):
            engine.dispose()


@contextlib.contextmanager
def _advisory(engine: sa.engine.Engine, name: str) -> Iterator[None]:
    key = lock_key(name)
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


LOCKS_DIR = "locks"


def lock_file(database: Path, name: str) -> Path:
    """The file of SQLite lock ``name`` of ``database``: in ``locks/`` beside the database."""
    return database.parent / LOCKS_DIR / f"{database.name}.{lock_key(name) & 0xFFFFFFFF:08x}.lock"


@contextlib.contextmanager
def _file_lock(database: Path, name: str) -> Iterator[None]:
    path = lock_file(database, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _process_lock(str(path)), open(path, "a") as handle:  # flock is per open file
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _mysql_lock(engine: sa.engine.Engine, name: str) -> Iterator[None]:
    short = f"tuner-{lock_key(name) & 0xFFFFFFFFFFFF:x}"
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT GET_LOCK(:name, -1)"), {"name": short})
        try:
            yield
        finally:
            connection.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": short})


def storage_engine(storage) -> sa.engine.Engine | None:
    """The SQLAlchemy engine of an Optuna RDB storage (also behind Optuna's cache), else None."""
    backend = getattr(storage, "_backend", storage)
    return getattr(backend, "engine", None)


def study_lock(study, part: str = "") -> contextlib.AbstractContextManager:
    """The lock of one study (``part`` names a finer one, e.g. ``mlflow``)."""
    name = f"tuner-study:{study.study_name}" + (f":{part}" if part else "")
    return database_lock(storage_engine(study._storage), name)
