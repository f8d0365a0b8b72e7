"""The study survives crashing and hanging trials and keeps every completed one."""
import json
import shutil
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tuner.config import TuningConfig
from tuner.errors import UsageError
from tuner.models import TuningTarget
from tuner.trial.measurement import MeasureSettings
from tuner.trial.protocol import SLOTS_FILE, WARMUP_STEP
from tuner.space import load_space
from tuner.storages import attributes as attrs
from tuner.storages import trial_facts
from tuner.storages.attributes import StudyKey, TrialKey
from tuner.study import validation
from tuner.study.audit import audit
from tuner.study.loop import StudySettings, open_run, run_trials
from tuner.study.objectives import parse_objectives
from tuner.study.pruning import make_pruner

SPACE = """version: 1
device: CPU
knobs:
  rewrites.fold_batchnorm: {type: categorical, choices: [none, all], default: none}
  runtime.omp_num_threads: {type: categorical, choices: [null, 1, 3, 4], default: null}
"""


BASELINE = {"rewrites.fold_batchnorm": "none", "runtime.omp_num_threads": None}
QUICK = MeasureSettings(min_runs=2, min_seconds=0.0, max_seconds=3.0)


@pytest.fixture
def make_run(tmp_path):
    """A study run of a tiny model over SPACE, without validation; optionally its baseline and
    more configurations enqueued first."""
    space_file = tmp_path / "space.yaml"
    space_file.write_text(SPACE)

    def make(model, *, enqueue=(), study=None, image_size=16, measure=QUICK, **settings):
        study = study or optuna.create_study(direction="maximize")
        run = open_run(study, TuningTarget(f"tests.fixtures.tiny_models:{model}", 2, image_size),
                       load_space(space_file), parse_objectives(["throughput"]), measure,
                       StudySettings(**{"validate_top": 0, **settings}), tmp_path / "study")
        if enqueue:
            study.enqueue_trial(BASELINE, user_attrs={TrialKey.BASELINE.value: True})
        for params in enqueue:
            study.enqueue_trial(params)
        return run
    return make


@pytest.mark.parametrize("jobs", [1, 2])
def test_crash_and_hang_cost_one_trial_each(make_run, tmp_path, jobs):
    study = optuna.create_study(direction="maximize",
                                storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="s")
    run = make_run("crash_or_hang_by_threads", study=study, trial_timeout=10, jobs=jobs, enqueue=[
        {"rewrites.fold_batchnorm": "all", "runtime.omp_num_threads": threads}
        for threads in (3, 4, 1)])
    run_trials(run, 4)
    trials = study.get_trials()
    statuses = [trial_facts.trial_result(t).status.value for t in trials]
    assert statuses == ["ok", "compile_error", "timeout", "ok"]
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED,
                                         TrialState.PRUNED, TrialState.COMPLETE]
    assert "SIGSEGV" in trial_facts.trial_result(trials[1]).error
    assert trials[3].user_attrs["speedup"] > 0
    assert Path(tmp_path / "study" / "trials" / "2" / "stderr.txt").exists()  # failures kept
    assert trial_facts.is_baseline(trials[0]) and run.best_trials()[0].number in (0, 3)
    figures = audit(study)  # the fault suite's view: the hang lost nothing, left nothing running
    assert (figures.lost, figures.running, figures.waiting, figures.completed) == (0, 0, 0, 4)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_trial_whose_directory_is_removed_is_an_error_record_and_the_study_goes_on(
        make_run, monkeypatch, jobs):
    from tuner.runner import isolate

    started = isolate.TrialProcess.start

    def start_then_remove(self):
        started(self)
        if self.workdir.name == "1":  # trial 1's directory goes while its process runs
            shutil.rmtree(self.workdir)
        return self
    monkeypatch.setattr(isolate.TrialProcess, "start", start_then_remove)
    run = make_run("tiny_net", jobs=jobs, enqueue=[{"rewrites.fold_batchnorm": fold,
                                                    "runtime.omp_num_threads": 1}
                                                   for fold in ("all", "none")])
    run_trials(run, 3)
    trials = run.study.get_trials()
    assert [trial_facts.trial_result(t).status.value
            for t in trials] == ["ok", "runtime_error", "ok"]
    assert "the trial's directory" in trial_facts.trial_result(trials[1]).error
    assert "was removed while the trial ran" in trial_facts.trial_result(trials[1]).error


def test_the_defaults_one_knob_neighbours_are_tried_before_the_sampler_picks(make_run):
    run = make_run("tiny_net")  # SPACE's default is the baseline: only its neighbours follow
    run_trials(run, 5)
    trials = run.study.trials
    assert [trial_facts.origin(t) for t in trials] == ["baseline"] + ["screening"] * 4
    assert [trial_facts.trial_config(t).flat() for t in trials[1:]] == [
        TuningConfig.from_knobs(knobs).flat() for knobs in (
            {"rewrites.fold_batchnorm": "all"}, {"runtime.omp_num_threads": 1},
            {"runtime.omp_num_threads": 3}, {"runtime.omp_num_threads": 4})]


def test_without_the_default_only_the_baseline_comes_before_the_sampler(make_run):
    run = make_run("tiny_net", start_from_default=False)
    run_trials(run, 2)
    assert [trial_facts.origin(t) for t in run.study.trials] == ["baseline", "sampler"]


@pytest.mark.parametrize("jobs", [1, 3])  # 3: both copies in the same batch
def test_a_configuration_measured_before_is_reused_not_run_again(make_run, tmp_path, jobs):
    folded = {"rewrites.fold_batchnorm": "all", "runtime.omp_num_threads": None}
    run = make_run("tiny_net", enqueue=[folded, folded], jobs=jobs)
    run_trials(run, 3)
    first, second = run.study.trials[1], run.study.trials[2]
    assert TrialKey.REUSED_FROM.value not in first.user_attrs
    assert second.user_attrs[TrialKey.REUSED_FROM.value] == 1
    assert second.values == first.values and second.user_attrs["result"] == first.user_attrs["result"]
    assert not (tmp_path / "study" / "trials" / "2").exists()  # no process was started


def test_a_clearly_slower_configuration_is_pruned_early(make_run):
    study = optuna.create_study(direction="maximize", pruner=make_pruner("best", 1))
    run = make_run("slow_when_single_threaded", study=study, image_size=32,
                   measure=MeasureSettings(min_runs=20, min_seconds=2.0, max_seconds=10.0),
                   enqueue=[{"rewrites.fold_batchnorm": "none", "runtime.omp_num_threads": 1}])
    run_trials(run, 2)
    baseline, slow = study.trials
    assert baseline.state == TrialState.COMPLETE
    assert slow.state == TrialState.PRUNED
    result = trial_facts.trial_result(slow)
    assert result.status.value == "pruned" and "pruned after" in result.error
    assert result.saved_seconds > 0
    assert max(slow.intermediate_values) < 20  # stopped before its 20 timed runs
    assert WARMUP_STEP in slow.intermediate_values  # its warmup run (the baseline reports none)
    assert all(step & (step - 1) == 0 for step in slow.intermediate_values)  # runs 1, 2, 4, ...
    assert max(slow.intermediate_values.values()) < 0.7 * baseline.value


def test_trials_over_the_memory_budget_are_kept_but_never_win(make_run):
    run = make_run("tiny_net", max_memory_mb=1.0)
    run_trials(run, 2)
    trials = run.study.trials
    results = [trial_facts.trial_result(t) for t in trials]
    assert [r.status.value for r in results] == ["constraint_violated"] * 2
    assert all("> --max-memory-mb 1" in r.error and r.metrics.peak_memory_mb > 1 for r in results)
    assert trial_facts.baseline_trial(trials) is trials[0]  # still the speed reference
    assert trial_facts.ranked_trials(run.study) == []


def test_jobs_compile_together_but_time_one_at_a_time(make_run, tmp_path):
    run = make_run("tiny_net", jobs=2, keep_trial_dirs=True, enqueue=[
        {"rewrites.fold_batchnorm": "all", "runtime.omp_num_threads": threads}
        for threads in (None, 1, 3)])
    run_trials(run, 4)
    assert [t.state for t in run.study.trials] == [TrialState.COMPLETE] * 4
    assert not attrs.has(run.study, StudyKey.VALIDATION)  # validate_top=0: off
    assert not (tmp_path / "study" / "validation").exists()
    trial_dir = tmp_path / "study" / "trials"
    started = [(trial_dir / f"{n}" / "request.json").stat().st_mtime for n in range(4)]
    released = [(trial_dir / f"{n}" / "go").stat().st_mtime for n in range(4)]
    finished = [(trial_dir / f"{n}" / "result.json").stat().st_mtime for n in range(4)]
    for first, second in ((0, 1), (2, 3)):  # the batches
        assert started[second] < released[first]  # both processes were up before any timing
    windows = sorted(zip(released, finished))
    assert all(end <= next_start for (_, end), (next_start, _) in zip(windows, windows[1:]))
    # each record carries its phases as the study saw them: build, wait at the gate, measure
    phases = [trial_facts.trial_result(t).phases for t in run.study.trials]
    assert all([p[0] for p in trial] == ["build", "wait", "measure"] for trial in phases)
    assert all(a[2] <= b[1] + 1e-6 for trial in phases for a, b in zip(trial, trial[1:]))
    measuring = sorted((p[2][1], p[2][2]) for p in phases)
    assert all(end <= next_start + 1e-6
               for (_, end), (next_start, _) in zip(measuring, measuring[1:]))


def test_validation_compiles_every_candidate_once_then_times_them_in_turns(make_run, tmp_path):
    folded = {"rewrites.fold_batchnorm": "all", "runtime.omp_num_threads": None}
    run = make_run("tiny_net", jobs=2, validate_top=1, validation_rounds=2, enqueue=[folded])
    run_trials(run, 2)
    report = validation.current_report(run.study)
    assert report.winner == 1 and report.candidate(1).speedup > 0
    assert len(report.candidate(1).speedups) == 2 and all(s > 0 for s in report.candidate(1).speedups)
    rounds = tmp_path / "study" / "validation"
    candidate, baseline = rounds / "0", rounds / "1"  # trial 1, then the baseline
    assert (baseline / "request.json").stat().st_mtime < (candidate / "go").stat().st_mtime
    ended = {(name, line["slot"]): line["ended_at"] for name, where in
             (("candidate", candidate), ("baseline", baseline))
             for line in map(json.loads, (where / SLOTS_FILE).read_text().splitlines())}
    assert sorted(ended, key=ended.get) == [("candidate", 0), ("baseline", 0), ("baseline", 1),
                                            ("candidate", 1)]


def test_jobs_must_be_positive():
    with pytest.raises(UsageError, match="--jobs 0"):
        StudySettings(jobs=0)
