import optuna
import pytest

from tuner.config import KernelChoice
from tuner.kernels.space import load_kernel_space
from tuner.space.kernel_knobs import (CUSTOM, PER_WORKLOAD, REPAIRED_ATTR, TILE_PER_WORKLOAD,
                                     KernelKnobs, Workload)

SPACES = load_kernel_space()
WORKLOADS = tuple(Workload(f"dense_{i}", "conv2d_dense") for i in range(20)) + (
    Workload("depthwise_0", "conv2d_depthwise"),)


def test_repair_changes_one_parameter_to_the_nearest_valid_value():
    dense = SPACES["conv2d_dense"]
    broken = dense.complete({"oc_register_block": 14, "spatial_vectors": 4})
    assert not dense.is_valid(broken)
    repaired = dense.nearest_valid(broken)
    assert dense.is_valid(repaired)
    assert sum(repaired[k] != broken[k] for k in broken) == 1
    assert dense.nearest_valid(dense.defaults()) == dense.defaults()


def test_every_suggestion_is_valid_even_with_many_workloads():
    knobs = KernelKnobs(SPACES, CUSTOM, WORKLOADS)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    repaired_trials = 0
    for _ in range(30):
        trial = study.ask()
        choices = knobs.suggest(trial)
        assert knobs.invalid_reason(choices) is None
        repaired_trials += REPAIRED_ATTR in trial.user_attrs
        study.tell(trial, 0.0)
    assert repaired_trials > 0  # 20 dense workloads: almost every trial needed a repair


def test_params_round_trip_for_enqueueing():
    knobs = KernelKnobs(SPACES, CUSTOM, WORKLOADS)
    defaults = knobs.default_choices()
    assert len(defaults) == len(WORKLOADS)
    study = optuna.create_study()
    study.enqueue_trial(knobs.params_for(defaults))
    assert knobs.suggest(study.ask()) == defaults


WINOGRAD_KEYS = ("dense_n16_c64_h56_w56_o64_k3x3_s1_p1",   # winograd by default (default_for)
                 "dense_n1_c512_h7_w7_o512_k3x3_s1_p1",    # dense by default (too few tiles)
                 "dense_n1_c64_h56_w56_o128_k3x3_s2_p1")   # stride 2: no winograd choice
MIXED = tuple(Workload(k, "conv2d_dense") for k in WINOGRAD_KEYS) + WORKLOADS[-1:]


def test_winograd_is_a_third_choice_only_where_it_can_run():
    knobs = KernelKnobs(SPACES, CUSTOM, MIXED)
    assert list(knobs.kernel_options(MIXED[0])) == ["custom", "winograd"]
    assert list(knobs.kernel_options(MIXED[2])) == ["custom"]
    assert list(knobs.kernel_options(MIXED[3])) == ["custom"]
    defaults = {c.workload: c.kernel for c in knobs.default_choices()}
    assert defaults == {WINOGRAD_KEYS[0]: "conv2d_winograd", WINOGRAD_KEYS[1]: "conv2d_dense",
                        WINOGRAD_KEYS[2]: "conv2d_dense", "depthwise_0": "conv2d_depthwise"}


def test_winograd_choices_round_trip_with_distinct_parameter_names():
    knobs = KernelKnobs(SPACES, CUSTOM, MIXED)
    winograd = SPACES["conv2d_winograd"]
    choices = (KernelChoice(WINOGRAD_KEYS[0], "conv2d_winograd",
                            tuple(sorted(winograd.complete({"tile_size": 2}).items()))),
               KernelChoice(WINOGRAD_KEYS[1], "conv2d_dense",
                            tuple(sorted(SPACES["conv2d_dense"].defaults().items()))))
    params = knobs.params_for(choices)
    assert params[f"kernels.{WINOGRAD_KEYS[0]}"] == "winograd"
    assert params["kernels.conv2d_winograd.tile_size"] == 2  # one tiling per kernel: shared
    assert params[f"kernels.{WINOGRAD_KEYS[2]}"] == "builtin"
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.enqueue_trial(params)
    assert knobs.suggest(study.ask()) == choices
    for _ in range(15):  # dense and winograd parameters of one workload never collide
        trial = study.ask()
        assert knobs.invalid_reason(knobs.suggest(trial)) is None
        study.tell(trial, 0.0)
    with pytest.raises(ValueError, match="cannot run"):
        knobs.params_for((KernelChoice(WINOGRAD_KEYS[2], "conv2d_winograd", ()),))


def test_kernels_are_chosen_per_workload_only_behind_the_switch():
    knobs = KernelKnobs(SPACES, CUSTOM, MIXED)
    default_kernels = {c.workload: c.kernel for c in knobs.default_choices()}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = {False: 0, True: 0}
    for _ in range(40):
        trial = study.ask()
        choices = knobs.suggest(trial)
        per_workload = trial.params[PER_WORKLOAD]
        seen[per_workload] += 1
        sampled_kernels = [name for name in trial.params
                           if name.count(".") == 1 and name not in (PER_WORKLOAD, TILE_PER_WORKLOAD)]
        if not per_workload:  # only tilings sampled; every workload on its default kernel
            assert sampled_kernels == []
            assert {c.workload: c.kernel for c in choices} == default_kernels
        else:
            assert len(sampled_kernels) == len(MIXED)
        study.tell(trial, 0.0)
    assert seen[False] > 5 and seen[True] > 5


@pytest.mark.parametrize("mixed, expected", [(False, False), (True, True)])
def test_the_switch_round_trips(mixed, expected):
    knobs = KernelKnobs(SPACES, CUSTOM, MIXED)
    choices = knobs.default_choices()[1:] if mixed else knobs.default_choices()  # first builtin
    params = knobs.params_for(choices)
    assert params[PER_WORKLOAD] is expected
    assert (f"kernels.{MIXED[1].key}" in params) is expected
    study = optuna.create_study()
    study.enqueue_trial(params)
    assert knobs.suggest(study.ask()) == choices


@pytest.mark.parametrize("unrolls, per_workload", [((4, 4), False), ((4, 2), True)])
def test_tilings_are_shared_per_kernel_unless_they_differ(unrolls, per_workload):
    knobs = KernelKnobs(SPACES, CUSTOM, WORKLOADS[:2])
    dense = SPACES["conv2d_dense"]
    choices = tuple(KernelChoice(w.key, "conv2d_dense", tuple(sorted(dense.complete(
        {"unroll": unroll}).items()))) for w, unroll in zip(WORKLOADS[:2], unrolls))
    params = knobs.params_for(choices)
    assert params[TILE_PER_WORKLOAD] is per_workload
    assert ("kernels.dense_0.unroll" in params) is per_workload
    assert ("kernels.conv2d_dense.unroll" in params) is not per_workload
    study = optuna.create_study()
    study.enqueue_trial(params)
    assert knobs.suggest(study.ask()) == choices


def test_shared_tilings_need_one_variant_per_kernel():
    knobs = KernelKnobs(SPACES, CUSTOM, MIXED)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    for _ in range(20):
        trial = study.ask()
        choices = knobs.suggest(trial)
        variants = {(c.kernel, c.params) for c in choices}
        if not trial.params[TILE_PER_WORKLOAD]:
            assert len(variants) == len({c.kernel for c in choices})
        study.tell(trial, 0.0)
