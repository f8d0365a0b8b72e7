import optuna

from tuner.kernels.space import load_kernel_space
from tuner.space.kernel_knobs import CUSTOM, REPAIRED_ATTR, KernelKnobs, Workload

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
