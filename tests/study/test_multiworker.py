"""Several workers on one study, and what survives their loss (the fault suite's mechanisms).

Heavier scenarios (an MLflow outage of 30 s, kill -9 of one of 3 workers) run in
``python -m tuner.bench faults``; here one fast test per mechanism (a hung trial:
tests/study/test_loop.py, test_crash_and_hang_cost_one_trial_each).
"""
import subprocess
import sys

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tests.conftest import REPO, tuner
from tuner.bench.faults import (POSTGRES, SPACE, TINY, fresh_database,
                                kill_worker_mid_trial, postgres_reachable, search_args)
from tuner.callbacks.mlflow_runs import StudyRuns
from tuner.callbacks.mlflow_tracking import MlflowTracker
from tuner.models import TuningTarget
from tuner.trial.measurement import MeasureSettings
from tuner.space import load_space
from tuner.storages.attributes import StudyKey, TrialKey
from tuner.storages.liveness import retried_from
from tuner.study.audit import audit
from tuner.study.loop import StudySettings, open_run, run_trials
from tuner.study.objectives import parse_objectives
from tuner.study.study_callback import StudyCallback

needs_postgres = pytest.mark.skipif(not postgres_reachable(),
                                    reason=f"PostgreSQL unreachable at {POSTGRES}")


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def _workers(args, count, runs_dirs=()):
    """``count`` searches started at once (each with its runs dir, as on its own machine)."""
    return [subprocess.Popen([sys.executable, "-m", "tuner.search", *map(str, args),
                              *(["--runs-dir", str(runs_dirs[i])] if runs_dirs else [])],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(count)]


@needs_postgres
def test_three_workers_started_at_once_on_a_fresh_database_share_one_study(space, tmp_path):
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(mlflow_uri).search_experiments()  # the store exists before the workers start
    export = tmp_path / "best.json"
    machines = [tmp_path / f"machine{i}" for i in range(3)]
    with fresh_database() as url:  # no tables yet: all three create them at once
        workers = _workers([*search_args(space), "--storage", url, "--study-name", "s",
                            "--study-trials", "6", "--tracking-uri", mlflow_uri,
                            "--out", export], 3, machines)
        outputs = [w.communicate(timeout=400) for w in workers]
        assert [w.returncode for w in workers] == [0, 0, 0], [err[-2000:] for _, err in outputs]
        study = optuna.load_study(study_name="s", storage=url)
        figures = audit(study, mlflow_uri, export)
        trials = study.get_trials()
        attributes = study.user_attrs
    assert (figures.asked, figures.baselines, figures.duplicated) == (6, 1, 0)
    assert figures.clean and figures.parent_runs == 1 and figures.nested_runs == 6
    assert all(t.user_attrs[TrialKey.HOST.value]["cores"] >= 1 for t in trials)
    assert len({t.user_attrs[TrialKey.WORKER.value] for t in trials}) >= 2
    assert attributes[StudyKey.JOINS.value] == 3
    # prepared on one machine, restored from the database on the others
    assert sum((m / "studies" / "s" / "prepare").exists() for m in machines) == 1
    assert all((m / "studies" / "s" / "assets" / "reference.npy").exists() for m in machines)
    assert sum("left to another worker" in err for _, err in outputs) == 2  # one ends it
    assert attributes[StudyKey.ENDED_BY.value]["trials"] == 6 and figures.export_valid


def test_kill_9_mid_trial_then_resume_reruns_its_configuration(space, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    args = [*search_args(space), "--storage", storage, "--study-name", "s",
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--runs-dir", tmp_path]
    (worker,) = _workers([*args, "--trials", "3"], 1)  # baseline, default, one neighbour
    assert kill_worker_mid_trial([worker], storage, "s", after=1, timeout=200) == worker.pid
    worker.communicate(timeout=30)
    tuner("search", *args, "--trials", "2")  # fails the killed trial once its grace has passed
    study = optuna.load_study(study_name="s", storage=storage)
    (killed,) = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    (retry,) = [t for t in study.get_trials() if retried_from(t) == killed.number]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    # the same configuration: what the killed trial had suggested (it may have been killed
    # between two suggestions), and the enqueued starting point's fixed parameters
    assert killed.params.items() <= retry.params.items()
    assert retry.params == killed.system_attrs.get("fixed_params", retry.params)
    figures = audit(study)
    assert (figures.lost, figures.running, figures.waiting, figures.baselines) == (0, 0, 0, 1)


def _tiny_run(study, space, tmp_path, model=TINY, **settings):
    return open_run(study, TuningTarget(model, 2, 16), load_space(space),
                    parse_objectives(["throughput"]),
                    MeasureSettings(min_runs=2, min_seconds=0.0, max_seconds=2.0),
                    StudySettings(**{"validate_top": 0, **settings}), tmp_path / "study")


class _Outage(StudyCallback):
    """The tracking store refuses to log nested runs while ``down`` (trial numbers)."""

    def __init__(self, down, monkeypatch):
        self.down, self.number = down, -1
        log_trial = StudyRuns.log_trial

        def refusing(runs, trial, run_id=None):
            if self.number in self.down:
                raise ConnectionError("connection refused (simulated outage)")
            return log_trial(runs, trial, run_id)
        monkeypatch.setattr(StudyRuns, "log_trial", refusing)

    def on_trial_end(self, run, trial, result):
        self.number = trial.number


def test_trials_go_on_while_mlflow_is_down_and_are_logged_once_it_is_back(space, tmp_path,
                                                                          monkeypatch, capsys):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(direction="maximize", study_name="s", storage=storage)
    run = _tiny_run(study, space, tmp_path)
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # down at trial 1 (logged at trial 2, the server back), and from trial 3 to the end
    outage = _Outage({1, 3}, monkeypatch)
    run_trials(run, 4, [outage, MlflowTracker(mlflow_uri, tmp_path / "artifacts")])
    assert "unreachable" in capsys.readouterr().err
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 4
    assert audit(study, mlflow_uri).mlflow_missing == 1  # trial 3: nothing after it
    outage.number = -1
    for expected in ("logged 1 trials", "logged 0 trials"):  # the second duplicates nothing
        synced = tuner("sync-mlflow", "--storage", storage, "--study-name", "s",
                       "--tracking-uri", mlflow_uri, runs_dir=tmp_path)
        assert expected in synced.stdout
    figures = audit(study, mlflow_uri)
    assert (figures.mlflow_missing, figures.mlflow_duplicated, figures.parent_runs,
            figures.nested_runs) == (0, 0, 1, 4)


def test_a_worker_on_another_cpu_is_refused_in_one_line(space, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(direction="maximize", study_name="s", storage=storage)
    study.set_user_attr(StudyKey.TARGET.value, TuningTarget(TINY, 2, 16).to_dict())
    study.set_user_attr(StudyKey.HOST.value, {"name": "elsewhere", "cpu_model": "Other CPU",
                                              "cores": 64, "key": "elsewhere|Other CPU|64"})
    process = tuner("search", *search_args(space), "--storage", storage, "--study-name", "s",
                    runs_dir=tmp_path, check=False)
    assert process.returncode == 2
    (line,) = process.stderr.strip().splitlines()
    assert "differs from the study's host elsewhere (Other CPU, 64 cores)" in line
    assert "--allow-heterogeneous" in line and not study.trials
