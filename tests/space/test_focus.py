"""The workload focus: per-workload draws go to the workloads that hold most of the time."""
import optuna
import pytest

from tuner.config import KernelChoice
from tuner.errors import UsageError
from tuner.kernels.param_space import DEFAULT_SPACE_PATH
from tuner.trial.result import Status, TrialResult
from tuner.space import load_space
from tuner.space.focus import Guide, WorkloadFocus
from tuner.space.kernel_knobs import PER_WORKLOAD, TILE_PER_WORKLOAD, KernelKnobs
from tests.fixtures.focus_workloads import GROUPS, KEYS, SPACES, TIMES
from tests.fixtures.records import metrics



@pytest.mark.parametrize("coverage, most, expected", [
    (0.5, 6, 1),    # the first holds 50 %
    (0.8, 6, 2),    # 5 + 3 = 80 %
    (0.81, 6, 3),
    (1.0, 6, 6),
    (1.0, 2, 2),    # capped
])
def test_focus_is_the_fewest_largest_workloads_covering_the_share(coverage, most, expected):
    focus = WorkloadFocus(coverage, most).select(TIMES, KEYS)
    assert focus == tuple(KEYS[:expected])


def test_focus_ignores_workloads_without_time_and_unknown_keys():
    assert WorkloadFocus(1.0, 6).select({KEYS[0]: 1.0, "elsewhere": 9.0, KEYS[1]: 0.0},
                                        KEYS) == (KEYS[0],)
    assert WorkloadFocus().select({}, KEYS) == ()


@pytest.mark.parametrize("bad", [{"coverage": 0}, {"coverage": 1.5}, {"max_workloads": 0},
                                 {"max_workloads": 2.5}, {"other": 1}, [0.8]])
def test_bad_focus_settings_are_refused_in_one_line(tmp_path, bad):
    (tmp_path / "space.yaml").write_text(
        "version: 1\ndevice: CPU\nknobs:\n  runtime.omp_num_threads: {type: categorical, choices: [null, 1], default: null}\n"
        f"custom_kernels: {{params: {DEFAULT_SPACE_PATH}, "
        f"focus: {bad!r}}}\n".replace("'", '"'))
    with pytest.raises(UsageError, match=r"space.yaml: custom_kernels.focus: focus") as caught:
        load_space(tmp_path / "space.yaml")
    assert "\n" not in str(caught.value)


def _guide(guide_choices) -> Guide:
    """The guide a study gives: its best trial measured TIMES with ``guide_choices``."""
    return Guide(0, TIMES, {c.workload: c for c in guide_choices})


def test_per_workload_draws_go_to_the_focus_the_rest_keep_the_best_trials_choice():
    knobs = KernelKnobs(SPACES, GROUPS, focus=WorkloadFocus(0.8, 6))
    dense = SPACES["conv2d_dense"]
    guide = tuple(KernelChoice(k, "conv2d_dense", tuple(sorted(
        dense.complete({"unroll": 2}).items()))) for k in KEYS)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=3))
    drawn = set()
    for _ in range(12):
        study.enqueue_trial({PER_WORKLOAD: True, TILE_PER_WORKLOAD: True})
        trial = study.ask()
        draw = knobs.suggest(trial, _guide(guide))
        choices = {c.workload: c for c in draw.choices}
        assert draw.focus == tuple(KEYS[:2])
        for key in KEYS[2:]:
            assert choices[key] == guide[KEYS.index(key)]
        drawn |= {choices[k] for k in KEYS[:2]}
        assert not any(f"kernels.{k}" in trial.params for k in KEYS[2:])
        assert trial.user_attrs == {}  # the space writes nothing on the trial
        study.tell(trial, 1.0)
    assert len(drawn) > 2  # the focus's two workloads got varied draws


def test_without_a_guide_or_per_workload_draws_there_is_no_focus():
    knobs = KernelKnobs(SPACES, GROUPS)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({PER_WORKLOAD: True, TILE_PER_WORKLOAD: True})
    trial = study.ask()
    assert knobs.suggest(trial).focus == ()
    assert all(f"kernels.{k}" in trial.params for k in KEYS)
    study.enqueue_trial({PER_WORKLOAD: False, TILE_PER_WORKLOAD: False})
    trial = study.ask()
    draw = knobs.suggest(trial, _guide(knobs.default_choices()))
    assert {c.kernel for c in draw.choices} == {"onednn"}
    assert draw.focus == ()


def test_a_trial_record_keeps_its_workload_times():
    result = TrialResult(Status.OK, metrics(1.0), workload_ms={"a": 1.5})
    assert TrialResult.from_dict(result.to_dict()).workload_ms == {"a": 1.5}
    assert TrialResult.from_dict({"status": "ok"}).workload_ms == {}
