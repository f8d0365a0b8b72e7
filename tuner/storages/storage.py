"""Where studies live: the Optuna storage and each study's local files under the runs dir."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import optuna

from tuner.errors import UsageError, one_line
from tuner.redact import mask_url, without_secrets
from tuner.storages.coordination import SCHEMA_LOCK, database_lock
from tuner.storages.liveness import storage_options

DEFAULT_RUNS_DIR = Path("mlruns")
STORAGE_ENV = "TUNER_STORAGE"  # the storage URL when --storage is not given (off command lines)


def default_storage_url(runs_dir: Path) -> str:
    return f"sqlite:///{runs_dir / 'optuna.db'}"


def default_tracking_uri(runs_dir: Path) -> str:
    return f"sqlite:///{runs_dir / 'mlflow.db'}"


def tracking_uri(requested: str | None, runs_dir: Path) -> str:
    """``--tracking-uri``, else $MLFLOW_TRACKING_URI, else SQLite in the runs dir; MLflow's
    HTTP client set to fail fast (one retry) on a server that is down."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    return requested or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(runs_dir)


def open_storage(url: str | None, runs_dir: Path,
                 heartbeat_seconds: int | None = None) -> optuna.storages.RDBStorage:
    """An Optuna storage for ``url`` (any RDB URL Optuna accepts), default SQLite in runs_dir;
    its tables are created under the database's schema lock (tuner.storages.coordination), so that
    workers starting at once on a fresh database do not collide. With ``heartbeat_seconds``,
    running trials are kept alive by heartbeats (tuner.storages.liveness). Without ``url``,
    ``$TUNER_STORAGE``, then SQLite in ``runs_dir``. An error shows the URL masked
    (tuner.redact)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    url = url or os.environ.get(STORAGE_ENV) or default_storage_url(runs_dir)
    try:
        with database_lock(url, SCHEMA_LOCK), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, **storage_options(heartbeat_seconds))
    except Exception as exc:  # SQLAlchemy raises many kinds; all mean "cannot use this URL"
        reason = without_secrets(one_line(exc), url)
        raise UsageError(f"--storage {mask_url(url)}: cannot open ({reason})") from None


def open_study(url: str | None, runs_dir: Path, requested: str | None) -> optuna.Study:
    """The study ``requested`` (or the storage's only one) of the storage at ``url``: the one
    way to open an existing study (``open_storage`` is for creating one)."""
    storage = open_storage(url, runs_dir)
    name = _study_name(storage, requested)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=storage)


def study_dir(runs_dir: Path, study_name: str) -> Path:
    """Local files of a study: assets/ (weights, input, reference) and trials/<number>/."""
    return runs_dir / "studies" / study_name


def _study_name(storage: optuna.storages.BaseStorage, requested: str | None) -> str:
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if requested:
        if requested not in names:
            raise UsageError(f"--study-name {requested}: no such study "
                             f"(studies: {', '.join(names) or 'none'})")
        return requested
    if len(names) == 1:
        return names[0]
    if not names:
        raise UsageError("no study in the storage: run python -m tuner.search first")
    raise UsageError(f"several studies, choose one with --study-name: {', '.join(names)}")
