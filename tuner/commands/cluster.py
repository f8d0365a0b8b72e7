"""``python -m tuner.cluster --workers 3 -- <tuner.search arguments>``: a local cluster in one command.

Starts an ``mlflow server`` (backend in PostgreSQL, its own schema ``mlflow`` of the database:
MLflow and Optuna would otherwise share the table ``alembic_version``; artifacts in a
directory), then N ``python -m tuner.search`` workers on this machine against one Optuna study
in the local PostgreSQL, waits for them and prints what the study holds (tuner.study.audit).
What it runs is what real machines run (docs/scaling-out.md): the same search command on each,
with ``--study-name`` and ``--study-trials``; the storage and tracking URLs, which may hold
passwords, go through the workers' environment (``$TUNER_STORAGE``, ``$MLFLOW_TRACKING_URI``).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import sqlalchemy as sa

from tuner.children import child_environment, python_command
from tuner.commands.entry import OneLineParser
from tuner.commands.options import (add_runs_dir_argument, add_storage_argument,
                                    add_study_name_argument, artifacts_dir,
                                    default_export_path)
from tuner.errors import UsageError, one_line
from tuner.redact import mask_url, without_secrets
from tuner.storages.storage import STORAGE_ENV

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
MLFLOW_SCHEMA = "mlflow"


def mlflow_backend(url: str, schema: str = MLFLOW_SCHEMA) -> str:
    """``url`` with the PostgreSQL search path set to ``schema`` (created if missing)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    except Exception as exc:
        raise UsageError(f"--mlflow-backend {mask_url(url)}: cannot create schema {schema} "
                         f"({without_secrets(one_line(exc), url)})") from None
    finally:
        engine.dispose()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


class MlflowServer:
    """An ``mlflow server`` process on 127.0.0.1:``port``; ``stop`` ends it (its whole group).
    Its backend URL (with the database password) goes through its environment
    (``MLFLOW_BACKEND_STORE_URI``), not its command line, which ``ps`` shows to everyone."""

    def __init__(self, backend: str, artifacts: Path, port: int, log: Path):
        self.backend, self.artifacts, self.port, self.log = backend, artifacts, port, log
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> "MlflowServer":
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                python_command("mlflow", "server",
                               "--artifacts-destination", str(self.artifacts.resolve()),
                               "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=child_environment(base={**os.environ,
                                            "MLFLOW_BACKEND_STORE_URI": self.backend}),
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise UsageError(f"mlflow server on port {self.port} did not start; see {self.log}")
            time.sleep(0.5)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def model_argument(search_args: list[str]) -> str | None:
    """The ``--model`` of tuner.search arguments, if given."""
    for i, arg in enumerate(search_args):
        if arg == "--model" and i + 1 < len(search_args):
            return search_args[i + 1]
        if arg.startswith("--model="):
            return arg.partition("=")[2]
    return None


def worker_environment(storage: str, tracking_uri: str) -> dict[str, str]:
    """What a worker gets through its environment rather than its command line (visible to
    every user in ``ps``): the storage and tracking URLs, which may hold passwords."""
    return {STORAGE_ENV: storage, "MLFLOW_TRACKING_URI": tracking_uri}


def start_worker(search_args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """One ``python -m tuner.search`` worker, its output in ``log`` (tuner.children: its
    import path holds tuner and the ``--model`` factory's directory, not the working one)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        return subprocess.Popen(python_command("tuner.search", *search_args),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=child_environment(model_argument(search_args),
                                                      {**os.environ, **(env or {})}))


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m tuner.cluster", description=__doc__)
    parser.add_argument("--workers", type=int, default=3)
    add_storage_argument(parser, os.environ.get(STORAGE_ENV) or POSTGRES,
                         f"Optuna storage (default ${STORAGE_ENV}, else {POSTGRES})")
    parser.add_argument("--mlflow-backend", default=POSTGRES,
                        help="PostgreSQL database of the MLflow server (schema mlflow in it)")
    parser.add_argument("--port", type=int, default=5005)
    add_runs_dir_argument(parser, Path("mlruns") / "cluster")
    add_study_name_argument(parser, "default: cluster-<random>")
    parser.add_argument("--study-trials", type=int, default=12)
    parser.add_argument("--keep-server", action="store_true",
                        help="leave the MLflow server running (to browse the runs)")
    parser.add_argument("search", nargs=argparse.REMAINDER,
                        help="-- then tuner.search arguments (model, space, measurement...)")
    return parser


def main(argv: list[str]) -> int:
    from tuner.storages.storage import open_storage
    from tuner.study.audit import audit

    args = _parser().parse_args(argv)
    search = [a for a in args.search if a != "--"]
    name = args.study_name or f"cluster-{uuid.uuid4().hex[:8]}"
    runs = args.runs_dir.resolve()
    server = MlflowServer(mlflow_backend(args.mlflow_backend), artifacts_dir(runs), args.port,
                          runs / "logs" / "mlflow-server.log").start()
    started = time.monotonic()
    export = default_export_path(runs, name)
    try:
        common = [*search, "--study-name", name, "--study-trials", str(args.study_trials),
                  "--runs-dir", str(runs), "--out", str(export), "--no-progress"]
        workers = [start_worker(common, runs / "logs" / f"{name}-worker{i}.log",
                                worker_environment(args.storage, server.uri))
                   for i in range(args.workers)]
        codes = [w.wait() for w in workers]
        import optuna

        try:
            study = optuna.load_study(study_name=name, storage=open_storage(args.storage, runs))
        except KeyError:
            raise UsageError(f"no worker created study {name} (exit codes {codes}); see "
                             f"{runs / 'logs'}") from None
        figures = audit(study, server.uri, export if export.exists() else None)
    finally:
        if not args.keep_server:
            server.stop()
    print(f"study {name}: {args.workers} workers (exit codes {codes}) in "
          f"{time.monotonic() - started:.0f} s; logs under {runs / 'logs'}")
    for key, value in figures.to_dict().items():
        print(f"  {key}: {value}")
    print(f"export: {export if export.exists() else 'none'}; MLflow: {server.uri} "
          f"({f'running, pid {server.process.pid}' if args.keep_server else 'stopped'}; "
          f"backend {mask_url(args.mlflow_backend)} schema {MLFLOW_SCHEMA})")
    return 0 if figures.clean and not any(codes) else 1
