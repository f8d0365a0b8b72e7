"""tuner.callbacks.profiling.ProfileWinner: what it asks of the profiling session."""
from types import SimpleNamespace

import optuna

from tuner.callbacks import profiling
from tuner.config import ProgramConfig, TuningConfig
from tuner.trial.result import Status, TrialResult
from tuner.storages.attributes import TrialKey
from tests.fixtures.records import metrics


def _trial(images_per_second: float, config: TuningConfig, baseline: bool):
    result = TrialResult(Status.OK, metrics(images_per_second))
    return optuna.trial.create_trial(value=images_per_second, user_attrs={
        TrialKey.RESULT.value: result.to_dict(), TrialKey.CONFIG.value: config.to_dict(),
        TrialKey.BASELINE.value: baseline})


def test_each_side_is_profiled_with_the_latency_its_trial_measured(monkeypatch, tmp_path):
    study = optuna.create_study(direction="maximize")
    study.add_trial(_trial(0.25, TuningConfig(), baseline=True))   # 4 s per inference
    study.add_trial(_trial(50.0, TuningConfig(programs=ProgramConfig("network")), False))
    asked = []

    def profile_one(target, assets_dir, config, label, workdir, runs, seed, timeout,
                    measured_latency_s):
        asked.append((label, timeout, measured_latency_s))
        return None, f"{label}: failed"

    monkeypatch.setattr(profiling, "profile_one", profile_one)
    run = SimpleNamespace(study=study, target=None, assets_dir=tmp_path, directory=tmp_path,
                          settings=SimpleNamespace(trial_timeout=300.0))
    callback = profiling.ProfileWinner()
    assert callback._pair(run, study.trials[1]).error == "baseline: failed"
    monkeypatch.setattr(callback, "_baseline", object())
    callback._pair(run, study.trials[1])
    assert [(label, latency) for label, _, latency in asked] == [("baseline", 4.0),
                                                                 ("trial 1", 0.02)]
    assert {timeout for _, timeout, _ in asked} == {300.0}
