"""A study's prepared assets kept in its database: prepared once per study, on one machine.

Rules:

- On a database server (PostgreSQL, MySQL), the first worker of a study prepares the assets
  (random weights, fixed input, untuned reference output, model.json, captured graph: the
  files directly under ``assets/``) and stores them in the table ``tuner_study_assets``,
  keyed by the study's id and name. A worker on a machine without a local copy restores them
  instead of preparing: every machine measures the same weights against the same reference.
- With SQLite (one machine) or Optuna's in-memory storage the local files are the only copy.
- Restored files are written atomically (temporary name, then rename); derived files (the
  kernel reference outputs under ``assets/kernel_references``) are made per machine from them.
- Called under the study's lock (tuner.study.run.open_run).
"""
from __future__ import annotations

from pathlib import Path

import optuna
import sqlalchemy as sa

from tuner.files import atomic_write_bytes
from tuner.storages.coordination import SCHEMA_LOCK, database_lock, storage_engine

TABLE = "tuner_study_assets"
_METADATA = sa.MetaData()
_ASSETS = sa.Table(
    TABLE, _METADATA,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("study_name", sa.String(500), nullable=False),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False))


class StudyAssets:
    """The assets of ``study`` in its database (see module)."""

    def __init__(self, study: optuna.Study, engine: sa.engine.Engine):
        self.study, self.engine = study, engine
        with database_lock(engine, SCHEMA_LOCK):
            _METADATA.create_all(engine)
        self.key = (_ASSETS.c.study_id == study._study_id) & (
            _ASSETS.c.study_name == study.study_name)

    def restore(self, directory: Path) -> bool:
        """Write the stored files into ``directory``; False when the study has none."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(_ASSETS.c.name, _ASSETS.c.data)
                                      .where(self.key)).all()
        if not rows:
            return False
        for name, data in rows:
            atomic_write_bytes(directory / name, data)
        return True

    def save(self, directory: Path) -> int:
        """Store the files directly under ``directory``; how many."""
        files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
        with self.engine.begin() as connection:
            connection.execute(sa.delete(_ASSETS).where(self.key))
            connection.execute(_ASSETS.insert(), [
                {"study_id": self.study._study_id, "study_name": self.study.study_name,
                 "name": p.name, "data": p.read_bytes()} for p in files])
        return len(files)


def study_assets(study: optuna.Study) -> StudyAssets | None:
    """The study's asset store, None where the local files are the only copy (see module)."""
    engine = storage_engine(study._storage)
    if engine is None or engine.dialect.name == "sqlite":
        return None
    return StudyAssets(study, engine)
