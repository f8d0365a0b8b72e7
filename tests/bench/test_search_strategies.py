"""The search benchmark: its figures from trial sequences, and real (tiny) searches."""
import argparse
import json

import optuna
import pytest

from tuner.bench import search_strategies as bench
from tuner.bench import studies

TINY = "tests.fixtures.tiny_models:tiny_net"


@pytest.mark.parametrize("throughputs, after, best, target, reached", [
    ((1.0, None, 3.0, 2.0, 4.0), 2, 1.0, 3.9, 5),
    ((1.0, None, 3.0, 2.0, 4.0), 3, 3.0, 2.9, 3),
    ((None, None), 2, None, 1.0, None),
])
def test_best_after_and_trials_to_reach(throughputs, after, best, target, reached):
    outcome = studies.SearchOutcome("s", throughputs, 1.0)
    assert outcome.best_after(after) == best
    assert outcome.trials_to_reach(target) == reached


def test_trials_to_reach_the_defaults_best_and_the_own_best():
    # random peaks early and never improves: first to its own (lower) best, never to the
    # default's, which keeps improving
    outcomes = {("default", 0): studies.SearchOutcome("d", (1.0, 20.0, 20.5, 22.0, 22.5), 0.0),
                ("random", 0): studies.SearchOutcome("r", (1.0, 19.0, None, 18.0, 19.5), 0.0)}
    reached = bench.trials_to_reach(outcomes, 5)
    assert reached == {("default", 0): (4, 4), ("random", 0): (2, None)}
    lines = bench.verdicts(reached, 5)
    assert "random: reaches 95 % of the default's best with the same seed in median 6 trials " \
           "(per seed [6])" in lines
    assert "default reaches 95 % of the default's best with the same seed in fewer trials " \
           "than random: yes" in lines
    assert "default reaches 95 % of its own best in fewer trials than random: NO" in lines


@pytest.mark.slow
def test_runs_each_strategy_as_a_real_search_and_resumes(tmp_path, capsys):
    args = argparse.Namespace(model=TINY, batch_size=2, image_size=16, trials=2,
                              checkpoints=[1, 2], seeds=[0], jobs=1, runs_dir=tmp_path,
                              no_warm_start_check=True, compare_jobs=None, warm_model=TINY)
    assert bench.run(args) == 0
    printed = capsys.readouterr().out
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    for name in ("default-seed0", "random-seed0"):
        study = optuna.load_study(study_name=name, storage=storage)
        assert len(study.trials) == 2 and study.trials[0].user_attrs["baseline"]
    default_trial = optuna.load_study(study_name="default-seed0", storage=storage).trials[1]
    random_trial = optuna.load_study(study_name="random-seed0", storage=storage).trials[1]
    assert default_trial.system_attrs.get("fixed_params")  # the enqueued space default
    assert not random_trial.system_attrs.get("fixed_params")  # sampled
    assert "default   " in printed and "random    " in printed and "95 % of its own best" in printed
    assert "'dflt'" in printed
    logs = {p: p.stat().st_mtime for p in tmp_path.glob("*.log")}
    assert bench.run(args) == 0  # complete studies are read, not run again
    assert {p: p.stat().st_mtime for p in tmp_path.glob("*.log")} == logs
    assert "running" not in capsys.readouterr().out


def test_same_figures_pairs_configurations_by_hash():
    first = studies.SearchOutcome("a", (), 0.0, {"x": 10.0, "y": 20.0, "z": 5.0})
    second = studies.SearchOutcome("b", (), 0.0, {"x": 11.0, "y": 20.0, "w": 1.0})
    assert sorted(bench.same_figures(first, second)) == [1.0, 1.1]


@pytest.mark.slow
def test_interleaved_studies_take_turns_with_their_own_kernel_caches(tmp_path):
    specs = [studies.StudySpec(name, 0, ("--sampler", "random", "--no-default-trial",
                                         "--no-workload-screening",
                                         "--validate-top", "0", "--no-warm-start"),
                               TINY, 2, 16, jobs=jobs, own_kernel_cache=True)
             for name, jobs in (("two", 2), ("one", 1))]
    first, second = studies.run_interleaved(tmp_path, specs, trials=3, chunk=2)
    assert len(first.throughputs) == len(second.throughputs) == 3
    for spec, outcome in zip(specs, (first, second)):
        walls = json.loads((tmp_path / f"{spec.name}.walls.json").read_text())
        assert len(walls) == 2 and outcome.wall_seconds == pytest.approx(sum(walls))
        assert any((tmp_path / "kernel-caches" / spec.name).rglob("*.so"))
    trials = {s.name: studies.read_trials(tmp_path, s.name) for s in specs}
    starts = sorted((t.datetime_start, name) for name, ts in trials.items() for t in ts)
    assert [name for _, name in starts] == ["two", "two", "one", "one", "one", "two"]
    assert [t.params for t in trials["two"]] == [t.params for t in trials["one"]]
    assert set(first.figures) & set(second.figures)  # the same configurations, measured by both


def test_warm_started_reads_the_warm_start_trial(tmp_path):
    study = optuna.create_study(study_name="warm", storage=studies.storage_url(tmp_path))
    study.set_user_attr("model_info", {"workloads": [{"key": "a"}, {"key": "b"}, {"key": "c"}]})
    assert studies.warm_started(tmp_path, "warm") is None
    for attrs in ({}, {"warm_start_from": {"a": "resnet50#3", "c": "resnet50#3"}}):
        study.enqueue_trial({}, user_attrs=attrs)
        study.tell(study.ask(), 1.0)
    assert studies.warm_started(tmp_path, "warm") == (1, 2, 3)
