"""Workload screening: the guiding trial's heaviest workload moved one step at a time."""
import dataclasses

import optuna
import pytest

from tuner.paths import REPO_ROOT
from tuner.kernels.workload import ConvWorkload, WorkloadGroup
from tuner.trial.result import Status, TrialResult
from tuner.space import load_space
from tuner.storages import attributes as attrs
from tuner.storages.attributes import StudyKey, TrialKey
from tuner.study.guide import suggest_config
from tuner.study.workload_screening import (ORIGIN, drift_corrected_ms,
                                             enqueue_workload_screening)
from tests.fixtures.records import metrics

KERNELS = ("onednn", "conv2d_dense", "conv2d_winograd_nhwc")
GROUPS = tuple(WorkloadGroup(w, (w.key,), KERNELS) for w in (
    ConvWorkload(1, 16 + i, 32, 14, 14, (3, 3), (1, 1), (1, 1, 1, 1)) for i in range(3)))
KEYS = [g.key for g in GROUPS]
TIMES = dict(zip(KEYS, (6.0, 3.0, 1.0)))  # focus (coverage 0.8): the first two


@pytest.fixture
def space():
    return load_space(REPO_ROOT / "search_spaces" / "cpu.yaml").with_model((), GROUPS)


def _add_measured(study, config, value, times=TIMES):
    result = TrialResult(Status.OK, metrics(value), workload_ms=times)
    study.add_trial(optuna.trial.create_trial(value=value, user_attrs={
        TrialKey.RESULT.value: result.to_dict(), TrialKey.CONFIG.value: config.to_dict(),
        TrialKey.CONFIG_HASH.value: config.canonical_hash()}))


def _waiting_configs(study, space):
    configs = []
    while study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        trial = study.ask()
        assert trial.user_attrs[TrialKey.ORIGIN.value] == ORIGIN
        configs.append(suggest_config(space, trial))
        study.tell(trial, 1.0)  # slower than every guide below
    return configs


def _changed(config, guide):
    return [c.workload for c, g in zip(config.kernels, guide.kernels) if c != g]


def test_the_heaviest_workload_is_moved_one_step_at_a_time(space):
    study = optuna.create_study(direction="maximize")
    guide = space.default_config()
    _add_measured(study, guide, 10.0)
    enqueued = enqueue_workload_screening(study, space, limit=100)
    configs = _waiting_configs(study, space)
    assert enqueued == len(configs) == len(space.kernels.workload_neighbours(guide.kernels,
                                                                             KEYS[0]))
    assert all(_changed(c, guide) == [KEYS[0]] for c in configs)
    assert all(dataclasses.replace(c, kernels=guide.kernels) == guide for c in configs)
    kernels = {c.kernels[0].kernel for c in configs}
    assert kernels == set(KERNELS)  # its parameters' neighbours, then the other kernels
    # the next call, with nothing waiting, screens the next workload of the focus, then none
    assert enqueue_workload_screening(study, space, limit=100) > 0
    assert all(_changed(c, guide) == [KEYS[1]] for c in _waiting_configs(study, space))
    assert enqueue_workload_screening(study, space, limit=100) == 0  # KEYS[2]: not in focus
    assert attrs.get(study, StudyKey.SCREENED)[0]["workload"] == KEYS[0]


def test_nothing_is_enqueued_while_trials_wait_or_beyond_the_limit(space):
    study = optuna.create_study(direction="maximize")
    _add_measured(study, space.default_config(), 10.0)
    assert enqueue_workload_screening(study, space, limit=0) == 0
    assert enqueue_workload_screening(study, space, limit=3) == 3
    assert enqueue_workload_screening(study, space, limit=3) == 0  # three wait
    assert len(_waiting_configs(study, space)) == 3


def test_without_a_guide_nothing_is_enqueued(space):
    study = optuna.create_study(direction="maximize")
    assert enqueue_workload_screening(study, space, limit=10) == 0


def _screened_neighbour(study, space, value, times):
    """Ask the first waiting screening trial and tell it as measured: ``value``, ``times``."""
    trial = study.ask()
    config = suggest_config(space, trial)
    result = TrialResult(Status.OK, metrics(value), workload_ms=times)
    for key, data in ((TrialKey.RESULT.value, result.to_dict()),
                      (TrialKey.CONFIG.value, config.to_dict()),
                      (TrialKey.CONFIG_HASH.value, config.canonical_hash())):
        trial.set_user_attr(key, data)
    study.tell(trial, value)
    return config


def test_a_neighbour_with_less_workload_time_is_the_next_incumbent(space):
    """Coordinate descent: a neighbour whose heaviest workload took less time wins even though
    its throughput, timed in a window 20 % slower, was lower; its own choice of that workload
    is screened next, never the step back."""
    study = optuna.create_study(direction="maximize")
    guide = space.default_config()
    _add_measured(study, guide, 10.0)
    enqueue_workload_screening(study, space, limit=2)
    slow_window = {k: ms * 1.2 for k, ms in TIMES.items()}
    better = _screened_neighbour(study, space, 9.0, {**slow_window, KEYS[0]: 4.0 * 1.2})
    _screened_neighbour(study, space, 11.0, {k: ms * 0.9 for k, ms in TIMES.items()})
    assert enqueue_workload_screening(study, space, limit=100) > 0
    assert attrs.get(study, StudyKey.INCUMBENT) == 1
    configs = _waiting_configs(study, space)
    assert all(_changed(c, better) == [KEYS[0]] for c in configs)
    assert guide not in configs  # measured already: the step back is left out
    screened = attrs.get(study, StudyKey.SCREENED)
    assert [choice["workload"] for choice in screened] == [KEYS[0], KEYS[0]]


def test_a_neighbour_faster_only_by_its_window_does_not_win(space):
    study = optuna.create_study(direction="maximize")
    _add_measured(study, space.default_config(), 10.0)
    enqueue_workload_screening(study, space, limit=1)
    _screened_neighbour(study, space, 12.0, {k: ms * 0.8 for k, ms in TIMES.items()})
    enqueue_workload_screening(study, space, limit=100)
    assert attrs.get(study, StudyKey.INCUMBENT) == 0
    screened = attrs.get(study, StudyKey.SCREENED)
    assert [choice["workload"] for choice in screened] == [KEYS[0], KEYS[1]]


@pytest.mark.parametrize("times, expected", [
    ({"a": 1.0, "b": 2.0, "c": 3.0}, 6.0),              # same window, same times
    ({"a": 2.0, "b": 4.0, "c": 6.0}, 6.0),              # twice as slow a window: scaled back
    ({"a": 0.5, "b": 2.0, "c": 3.0}, 5.5),              # the moved workload alone faster
    ({"a": 0.5, "b": 2.0, "c": 6.0, "d": 9.0}, 13.125),  # median of b's 1 and c's 0.5 scales
])
def test_drift_corrected_time(times, expected):
    assert drift_corrected_ms({"a": 1.0, "b": 2.0, "c": 3.0}, times, "a") == \
        pytest.approx(expected)
    assert drift_corrected_ms({"a": 1.0}, times, "a") is None  # nothing else in common


def test_an_incumbent_this_space_cannot_express_is_skipped_not_raised(space):
    """A study resumed with another space: its incumbent's kernel or knob values are not this
    space's; screening enqueues nothing for them instead of failing the search."""
    study = optuna.create_study(direction="maximize")
    default = space.default_config()
    unknown = dataclasses.replace(default, kernels=tuple(
        dataclasses.replace(c, kernel="conv2d_depthwise") if c.workload == KEYS[0] else c
        for c in default.kernels))
    _add_measured(study, unknown, 10.0)
    assert enqueue_workload_screening(study, space, limit=100) == 0
    assert not _waiting_configs(study, space)
    outside = dataclasses.replace(default, runtime=dataclasses.replace(default.runtime,
                                                                       omp_num_threads=7))
    study = optuna.create_study(direction="maximize")
    _add_measured(study, outside, 10.0)
    assert enqueue_workload_screening(study, space, limit=100) == 0
