"""Faults of a study on several workers: after each, nothing lost, duplicated or left RUNNING.

Each fault is a real run of ``python -m tuner.search`` workers (tiny test model, a small search
space, heartbeats every second) against PostgreSQL (127.0.0.1:5432, database ``test``, a
study of its own; the fresh-database fault creates and drops a database) or SQLite, with one
``mlflow server`` (SQLite backend) for all of them. The table gives, per fault, the study's
figures (tuner.study.audit): trials asked, completed (with a record: a hung trial is a
``timeout`` record), lost, duplicated starting points, left RUNNING, nested MLflow runs missing
or duplicated, and whether the exported winner reads back and names an ok trial.

Faults: 3 workers started at the same instant on a fresh database; ``kill -9`` of one of 3
workers in the middle of a trial; ``kill -9`` of the single search (SQLite) and the same
command again; the MLflow server killed for ``--outage`` s mid-study and restarted; the
artifact store refusing writes (its directory replaced by a file: the effect of a read-only or
full disk, also for root); a trial that hangs past ``--trial-timeout``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

import optuna
import sqlalchemy as sa
from optuna.trial import TrialState

from tuner.children import child_environment, python_command
from tuner.commands.cluster import POSTGRES, MlflowServer, start_worker, worker_environment
from tuner.storages import attributes as attrs
from tuner.storages import trial_facts
from tuner.storages.attributes import TrialKey
from tuner.study.audit import StudyAudit, audit

TINY = "tests.fixtures.tiny_models:tiny_net"
HANGING = "tests.fixtures.tiny_models:crash_or_hang_by_threads"  # hangs under 4 OMP threads
SPACE = """version: 1
device: CPU
knobs:
  rewrites.fold_batchnorm: {type: categorical, choices: [none, all], default: all}
  runtime.omp_num_threads: {type: categorical, choices: [null, 1, 2, 4], default: null}
"""
QUICK = ["--batch-size", "2", "--image-size", "16", "--min-runs", "2", "--min-seconds", "0",
         "--max-seconds", "2", "--no-progress", "--no-profile", "--no-report", "--no-warm-start",
         "--heartbeat", "1", "--validate-top", "0"]


def search_args(space: Path, model: str = TINY, *extra: str) -> list[str]:
    return ["--model", model, "--space", str(space), *QUICK, *extra]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_reachable(url: str = POSTGRES) -> bool:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect():
            return True
    except Exception:  # any driver error: not usable
        return False
    finally:
        engine.dispose()


@contextlib.contextmanager
def fresh_database(server: str = POSTGRES):
    """A new, empty PostgreSQL database on ``server`` (its URL), dropped afterwards."""
    name = f"tuner_faults_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def wait_until(condition: Callable[[], bool], timeout: float, poll: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return False


def running_trial(study: optuna.Study, after: int = 1):
    """A RUNNING trial numbered ``after`` or more (not a baseline) that has its configuration
    (suggested, so that its retry runs the same), else None."""
    return next((t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                 if t.number >= after and not trial_facts.is_baseline(t) and t.params
                 and attrs.has(t, TrialKey.WORKER)), None)


def load_when_there(storage: str, study_name: str, timeout: float = 300) -> optuna.Study | None:
    """The study once a worker has created it (None after ``timeout`` s)."""
    found = []

    def created() -> bool:
        with contextlib.suppress(KeyError):
            found.append(optuna.load_study(study_name=study_name, storage=storage))
        return bool(found)

    return found[0] if wait_until(created, timeout, poll=1.0) else None


def worker_pid(trial) -> int:
    """The pid in a trial's ``host:pid:start`` worker attribute."""
    return int(attrs.trial_get(trial, TrialKey.WORKER).split(":")[-2])


def kill_worker_mid_trial(workers: list[subprocess.Popen], storage: str, study_name: str,
                          after: int = 2, timeout: float = 300) -> int | None:
    """SIGKILL the worker running a trial numbered ``after`` or more, once one runs; its pid."""
    study, found = load_when_there(storage, study_name, timeout), []

    def running() -> bool:
        trial = running_trial(study, after)
        if trial is not None:
            found.append(trial)
        return trial is not None

    if study is None or not wait_until(running, timeout):
        return None
    pid = worker_pid(found[-1])
    target = next((w for w in workers if w.pid == pid), None)
    if target is None:
        return None
    target.kill()
    return pid


class Bench:
    """One fault's workers: their common arguments, logs and the study they share."""

    def __init__(self, root: Path, name: str, storage: str, tracking_uri: str, space: Path):
        self.root, self.name, self.storage, self.tracking = root / name, name, storage, tracking_uri
        self.study_name = f"faults-{name}-{uuid.uuid4().hex[:6]}"
        self.export = self.root / "export.json"
        self.space = space

    def args(self, *extra: str, model: str = TINY) -> list[str]:
        """A worker's arguments; its storage and tracking URLs go through its environment
        (tuner.commands.cluster.worker_environment), not its command line."""
        return [*search_args(self.space, model, *extra), "--study-name", self.study_name,
                "--runs-dir", str(self.root), "--out", str(self.export)]

    def start(self, *extra: str, index: int = 0, model: str = TINY) -> subprocess.Popen:
        return start_worker(self.args(*extra, model=model), self.root / "logs" / f"worker{index}.log",
                            worker_environment(self.storage, self.tracking))

    def audit(self) -> StudyAudit:
        study = optuna.load_study(study_name=self.study_name, storage=self.storage)
        return audit(study, self.tracking, self.export if self.export.exists() else None)

    def cleanup(self) -> None:
        if self.storage.startswith("postgresql"):
            with contextlib.suppress(KeyError):
                optuna.delete_study(study_name=self.study_name, storage=self.storage)


KILLED = "killed"  # the exit code column of the worker a fault killed on purpose
NOT_KILLED = "no-kill"  # no trial ran to kill: the fault did not happen (not clean)
SYNCED = "synced"  # python -m tuner.sync_mlflow ran after the workers (the study outlived MLflow)


def _wait_all(workers: list[subprocess.Popen], timeout: float = 900) -> list[int]:
    return [w.wait(timeout=timeout) for w in workers]


def fresh_database_three_workers(root, tracking, space, args):
    with fresh_database() as url:
        bench = Bench(root, "fresh-db-3-workers", url, tracking, space)
        common = ("--study-trials", "9", "--validate-top", "1", "--validation-rounds", "2")
        workers = [bench.start(*common, index=i) for i in range(3)]  # at the same instant
        codes = _wait_all(workers)
        figures = bench.audit()
    return figures, codes


def kill_one_of_three(root, tracking, space, args):
    bench = Bench(root, "kill-9-one-of-3", POSTGRES, tracking, space)
    workers = [bench.start("--study-trials", "10", index=i) for i in range(3)]
    victim = kill_worker_mid_trial(workers, POSTGRES, bench.study_name)
    codes = [KILLED if w.pid == victim else code for w, code in zip(workers, _wait_all(workers))]
    codes += [] if victim else [NOT_KILLED]
    figures = bench.audit()
    bench.cleanup()
    return figures, codes


def kill_single_and_resume(root, tracking, space, args):
    storage = f"sqlite:///{root / 'kill-9-resume' / 'optuna.db'}"
    bench = Bench(root, "kill-9-resume", storage, tracking, space)
    (bench.root).mkdir(parents=True, exist_ok=True)
    worker = bench.start("--trials", "5")
    killed = kill_worker_mid_trial([worker], storage, bench.study_name) == worker.pid
    codes = [KILLED if killed else NOT_KILLED, bench.start("--trials", "3", index=1).wait()]
    worker.wait()
    return bench.audit(), codes


def mlflow_outage(root, tracking, space, args, server: MlflowServer):
    bench = Bench(root, "mlflow-outage", POSTGRES, tracking, space)
    workers = [bench.start("--study-trials", str(args.outage_trials), index=i) for i in range(2)]
    _wait_finished(bench, 3)
    server.stop(signal.SIGKILL)
    time.sleep(args.outage)
    server.start()
    codes = _wait_all(workers)
    # Reused trials are instant: the study may end while the server is down. One more worker
    # then runs two trials with the server back and, ending the study, logs what is missing.
    more = bench.start("--study-trials", str(args.outage_trials + 2), index=len(workers))
    codes.append(more.wait())
    figures = bench.audit()
    if figures.mlflow_missing:  # the study ended while the server was down: the documented sync
        codes.append(SYNCED if start_worker_sync(bench).wait() == 0 else "sync-failed")
        figures = bench.audit()
    bench.cleanup()
    return figures, codes


def start_worker_sync(bench: Bench) -> subprocess.Popen:
    """``python -m tuner.sync_mlflow`` for the bench's study."""
    log = bench.root / "logs" / "sync_mlflow.log"
    with open(log, "wb") as out:
        return subprocess.Popen(python_command("tuner.sync_mlflow", "--study-name",
                                               bench.study_name, "--runs-dir", str(bench.root)),
                                stdout=out, stderr=subprocess.STDOUT,
                                env=child_environment(base={**os.environ, **worker_environment(
                                    bench.storage, bench.tracking)}))


def artifacts_refused(root, tracking, space, args, server: MlflowServer):
    bench = Bench(root, "artifacts-refused", POSTGRES, tracking, space)
    worker = bench.start("--trials", "5")
    _wait_finished(bench, 2)
    backup = server.artifacts.with_name(server.artifacts.name + ".saved")
    server.artifacts.rename(backup)
    server.artifacts.write_text("not a directory: the artifact store refuses every write\n")
    try:
        codes = [worker.wait()]
    finally:
        server.artifacts.unlink()
        backup.rename(server.artifacts)
    figures = bench.audit()
    bench.cleanup()
    return figures, codes


def hung_trial(root, tracking, space, args):
    storage = f"sqlite:///{root / 'hung-trial' / 'optuna.db'}"
    (root / "hung-trial").mkdir(parents=True, exist_ok=True)
    bench = Bench(root, "hung-trial", storage, tracking, space)
    codes = [bench.start("--trials", "6", "--trial-timeout", str(args.trial_timeout),
                         model=HANGING).wait()]
    return bench.audit(), codes


def _wait_finished(bench: Bench, count: int) -> None:
    """Until the bench's study holds ``count`` finished trials."""
    study = load_when_there(bench.storage, bench.study_name)
    wait_until(lambda: study is not None and len(study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))) >= count, 300)


FAULTS = {"3 workers at once, fresh database": fresh_database_three_workers,
          "kill -9 one of 3 workers mid-trial": kill_one_of_three,
          "kill -9 the single search, resume": kill_single_and_resume,
          "MLflow server down {outage:g} s mid-study": mlflow_outage,
          "artifact store refuses writes": artifacts_refused,
          "a trial hangs past its timeout": hung_trial}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", nargs="+", metavar="WORD", help="faults whose name has a word")
    parser.add_argument("--outage", type=float, default=30.0, help="MLflow outage in s (30)")
    parser.add_argument("--outage-trials", type=int, default=24,
                        help="trials of the outage study (enough to outlast the outage)")
    parser.add_argument("--trial-timeout", type=float, default=10.0)
    parser.add_argument("--runs-dir", type=Path, help="default: a temporary directory")


def run(args: argparse.Namespace) -> int:
    if not postgres_reachable():
        print(f"tuner.bench faults needs PostgreSQL at {POSTGRES}")
        return 2
    root = (args.runs_dir or Path(tempfile.mkdtemp(prefix="tuner-faults-"))).resolve()
    server = MlflowServer(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts", free_port(),
                          root / "mlflow-server.log").start()
    space = root / "space.yaml"
    space.write_text(SPACE)
    header = ("fault", "asked", "completed", "lost", "dup. starts", "RUNNING", "MLflow missing",
              "MLflow dup.", "export valid", "exit codes", "s", "clean")
    rows, started = [header], time.monotonic()
    try:
        for label, fault in FAULTS.items():
            label = label.format(outage=args.outage)
            if args.only and not any(word.lower() in label.lower() for word in args.only):
                continue
            begin = time.monotonic()
            extra = {"server": server} if fault in (mlflow_outage, artifacts_refused) else {}
            figures, codes = fault(root, server.uri, space, args, **extra)
            rows.append((label, figures.asked, figures.completed, figures.lost,
                         figures.duplicated, figures.running, figures.mlflow_missing,
                         figures.mlflow_duplicated, figures.export_valid,
                         ",".join(map(str, codes)), f"{time.monotonic() - begin:.0f}",
                         "yes" if figures.clean and set(codes) <= {0, KILLED, SYNCED} else "NO"))
            print(f"{label}: {figures.to_dict()}", flush=True)
    finally:
        server.stop()
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
    print("\n".join(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows))
    print(f"{len(rows) - 1} faults in {time.monotonic() - started:.0f} s; files under {root}")
    return 0 if all(r[-1] == "yes" for r in rows[1:]) else 1
