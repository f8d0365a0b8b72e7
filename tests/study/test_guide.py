"""The guide of a study's per-workload draws, and what a guided suggestion stores on the trial."""
from pathlib import Path

import optuna

from tuner.config import KernelChoice, TuningConfig
from tuner.trial.result import Status, TrialResult
from tuner.space import Guide, SearchSpace, WorkloadFocus
from tuner.space.kernel_knobs import PER_WORKLOAD, TILE_PER_WORKLOAD, KernelKnobs
from tuner.space.knobs import CategoricalKnob
from tuner.storages.attributes import TrialKey
from tuner.study.guide import guide, suggest_config
from tests.fixtures.focus_workloads import GROUPS, KEYS, SPACES, TIMES
from tests.fixtures.records import metrics

DENSE = SPACES["conv2d_dense"]
GUIDE_CHOICES = tuple(KernelChoice(k, "conv2d_dense", tuple(sorted(
    DENSE.complete({"unroll": 2}).items()))) for k in KEYS)


def _space(focus=WorkloadFocus(0.8, 6)) -> SearchSpace:
    """Programs always on, the kernel knobs of GROUPS."""
    programs = CategoricalKnob("programs.granularity", "network", choices=("network",))
    return SearchSpace(Path("space.yaml"), "CPU", (programs,),
                       KernelKnobs(SPACES, GROUPS, focus=focus))


def _add_measured(study, value, times=TIMES, choices=GUIDE_CHOICES):
    result = TrialResult(Status.OK, metrics(value), workload_ms=times)
    config = TuningConfig(kernels=choices)
    study.add_trial(optuna.trial.create_trial(value=value, user_attrs={
        TrialKey.RESULT.value: result.to_dict(), TrialKey.CONFIG.value: config.to_dict()}))


def test_the_guide_is_the_best_ranked_trial_with_workload_times():
    study = optuna.create_study(direction="maximize")
    assert guide(study) is None
    _add_measured(study, 10.0)
    _add_measured(study, 12.0, times={})  # better, but without workload times
    _add_measured(study, 8.0)
    assert guide(study) == Guide(0, TIMES, {c.workload: c for c in GUIDE_CHOICES})


def test_a_guided_trial_stores_its_focus_and_keeps_the_guides_choice_elsewhere():
    space = _space()
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=3))
    _add_measured(study, 10.0)
    drawn = set()
    for _ in range(12):
        study.enqueue_trial({PER_WORKLOAD: True, TILE_PER_WORKLOAD: True})
        trial = study.ask()
        choices = {c.workload: c for c in suggest_config(space, trial).kernels}
        assert trial.user_attrs[TrialKey.FOCUS.value] == {"guide": 0, "workloads": KEYS[:2]}
        for key in KEYS[2:]:
            assert choices[key] == GUIDE_CHOICES[KEYS.index(key)]
        drawn |= {choices[k] for k in KEYS[:2]}
        assert not any(f"kernels.{k}" in trial.params for k in KEYS[2:])
        study.tell(trial, 1.0)
    assert len(drawn) > 2  # the focus's two workloads got varied draws


def test_without_a_guide_or_per_workload_draws_no_focus_is_stored():
    space = _space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({PER_WORKLOAD: True, TILE_PER_WORKLOAD: True})
    trial = study.ask()
    suggest_config(space, trial)
    assert TrialKey.FOCUS.value not in trial.user_attrs
    assert all(f"kernels.{k}" in trial.params for k in KEYS)
    guided = optuna.create_study(direction="maximize")
    _add_measured(guided, 10.0, choices=space.kernels.default_choices())
    guided.enqueue_trial({PER_WORKLOAD: False, TILE_PER_WORKLOAD: False})
    trial = guided.ask()
    assert {c.kernel for c in suggest_config(space, trial).kernels} == {"onednn"}
    assert TrialKey.FOCUS.value not in trial.user_attrs


def test_repaired_kernel_parameters_are_stored_on_the_trial():
    space = _space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    broken = DENSE.complete({"oc_register_block": 14, "spatial_vectors": 4})
    assert not DENSE.is_valid(broken)
    chosen = tuple(KernelChoice(k, "conv2d_dense", tuple(sorted(DENSE.defaults().items())))
                   for k in KEYS)
    params = space.params_for(TuningConfig.from_knobs(
        {"programs.granularity": "network"}, kernels=chosen))
    params.update({f"kernels.conv2d_dense.{k}": v for k, v in broken.items()})
    study.enqueue_trial(params)
    trial = study.ask()
    config = suggest_config(space, trial)
    assert trial.user_attrs[TrialKey.REPAIRED.value] == KEYS
    assert all(DENSE.is_valid(dict(c.params)) for c in config.kernels)
    assert TrialKey.FOCUS.value not in trial.user_attrs  # no guide: nothing to focus on
    clean = optuna.create_study()
    clean.enqueue_trial(space.params_for(TuningConfig.from_knobs(
        {"programs.granularity": "network"}, kernels=chosen)))
    trial = clean.ask()
    suggest_config(space, trial)
    assert TrialKey.REPAIRED.value not in trial.user_attrs
