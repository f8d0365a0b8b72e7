import dataclasses
import math

import numpy as np
import pytest

from tuner.config import KernelChoice, ProgramConfig, TuningConfig
from tuner.errors import UsageError
from tuner.study.loop import StudySettings
from tuner.study.validation import (ValidatedCandidate, ValidationReport, choose_winner, complexity,
                                    log_t_interval, median_rel_se, relative, t_quantile_975)


def candidate(trial, speedups, complexity, ratio_se=()):
    return ValidatedCandidate(trial, tuple(speedups), tuple(speedups), complexity, tuple(ratio_se))


def test_clearly_fastest_wins():
    fast = candidate(1, [2.0, 2.1, 2.05], (3, 2))
    slow = candidate(2, [1.2, 1.25, 1.22], (0, 1))
    assert choose_winner([slow, fast]) == (1, "")


def test_within_noise_the_simpler_configuration_wins_and_the_report_says_so():
    fastest = candidate(1, [1.50, 1.62, 1.70], (4, 3))
    simpler = candidate(2, [1.45, 1.66, 1.58], (0, 2))
    winner, note = choose_winner([fastest, simpler])
    assert winner == 2
    assert "within noise" in note and "simplest" in note


def test_a_simpler_candidate_must_also_beat_the_default_that_the_fastest_beats():
    """Within noise is not transitive (a study on AMD EPYC): the fastest beat the space's
    default in every round, a simpler candidate was within noise of both; the fastest wins.
    A simpler candidate that beats the default beyond noise still wins over the fastest."""
    default = candidate(1, [108.0, 100.9, 120.1], (0, 0), (0.03,) * 3)
    fastest = candidate(15, [125.0, 116.0, 136.0], (4, 4), (0.03,) * 3)
    unproven = candidate(7, [116.0, 100.0, 131.0], (0, 1), (0.03,) * 3)
    assert relative(fastest, default).interval[0] > 1.0
    assert relative(unproven, fastest).interval[1] >= 1.0
    assert relative(unproven, default).interval[0] <= 1.0
    assert choose_winner([default, fastest, unproven]) == (15, "")
    proven = candidate(12, [124.0, 110.0, 135.0], (0, 1), (0.03,) * 3)
    assert relative(proven, default).interval[0] > 1.0
    assert relative(proven, fastest).interval[1] >= 1.0
    assert choose_winner([default, fastest, unproven, proven])[0] == 12

def test_candidates_are_compared_round_by_round_not_through_the_noisy_baseline():
    """Speedup intervals that overlap widely (the baseline varied by 25 % between rounds) while
    the faster candidate was 8 % faster in every round: it wins over the simpler one."""
    baseline = np.array([0.32, 0.26, 0.30])
    throughputs_fast = np.array([32.4, 32.5, 32.3])
    throughputs_simple = np.array([30.0, 30.1, 29.9])

    def measured(trial, throughputs, complexity):
        return ValidatedCandidate(trial, tuple(throughputs), tuple(throughputs / baseline),
                                  complexity, (0.03,) * 3, (0.005,) * 3)
    fast, simple = measured(1, throughputs_fast, (2, 3)), measured(2, throughputs_simple, (0, 1))
    assert simple.interval[1] > fast.interval[0]  # the speedups alone could not tell them apart
    assert relative(simple, fast).interval[1] < 1.0
    assert choose_winner([simple, fast]) == (1, "")


def test_a_comparison_is_never_narrower_than_the_candidates_own_timings():
    a = ValidatedCandidate(1, (10.0, 10.0, 10.0), (1.0,) * 3, (0, 0), (), (0.05,) * 3)
    b = ValidatedCandidate(2, (9.9, 9.9, 9.9), (1.0,) * 3, (0, 0), (), (0.05,) * 3)
    comparison = relative(b, a)
    assert comparison.ratio == pytest.approx(0.99) and comparison.interval[1] > 1.0


def test_failed_rounds_are_ignored_in_the_median_range_and_intervals():
    c = candidate(5, [1.2, float("nan"), 1.4], (0, 1))
    assert abs(c.speedup - 1.3) < 1e-12 and c.observed_range == (1.2, 1.4)
    assert c.spread == candidate(5, [1.2, 1.4], (0, 1)).spread


def test_intervals_are_student_t_on_the_log_ratios():
    ratios = [100.0, 104.0, 110.0]
    logs = np.log(ratios)
    half = 4.303 * logs.std(ddof=1)
    low, high = log_t_interval(ratios, prediction=True)
    assert math.isclose(math.log(high) - logs.mean(), half * math.sqrt(1 + 1 / 3))
    assert math.isclose(logs.mean() - math.log(low), half * math.sqrt(1 + 1 / 3))
    low, high = log_t_interval(ratios, prediction=False)
    assert math.isclose(math.log(high) - logs.mean(), half / math.sqrt(3))


def test_prediction_interval_of_one_round_is_wider_than_the_observed_range_and_the_ci():
    c = candidate(1, [100.0, 104.0, 110.0], (1, 0))
    assert c.spread[0] < c.interval[0] < c.observed_range[0]
    assert c.observed_range[1] < c.spread[1] and c.interval[1] < c.spread[1]


def test_prediction_interval_covers_about_95_percent_of_new_rounds():
    rng = np.random.default_rng(1)
    covered = []
    for _ in range(2000):
        rounds = np.exp(rng.normal(np.log(100), 0.05, size=4))
        low, high = log_t_interval(rounds, prediction=True)
        covered.append(low <= np.exp(rng.normal(np.log(100), 0.05)) <= high)
    assert 0.93 < np.mean(covered) < 0.97


def test_agreeing_rounds_do_not_claim_more_precision_than_their_timings():
    lucky = candidate(1, [2.0, 2.0, 2.0], (1, 0), ratio_se=[0.02, float("nan"), 0.02])
    assert lucky.measurement_sd == pytest.approx(0.02)
    low, high = lucky.spread
    assert math.log(high / 2.0) == pytest.approx(4.303 * 0.02 * math.sqrt(1 + 1 / 3))
    assert math.log(2.0 / low) == pytest.approx(4.303 * 0.02 * math.sqrt(1 + 1 / 3))
    noisy = candidate(2, [1.8, 2.0, 2.2], (1, 0), ratio_se=[0.001] * 3)
    assert noisy.spread == log_t_interval([1.8, 2.0, 2.2], prediction=True)  # the sample sd rules


def test_median_standard_error_shrinks_with_runs():
    assert median_rel_se(0.1, 100) == pytest.approx(0.012533)
    assert median_rel_se(0.1, 4) == pytest.approx(0.062665)


@pytest.mark.parametrize("ratios", [[1.5], [1.5, float("nan")], []])
def test_fewer_than_two_rounds_bound_no_interval(ratios):
    assert log_t_interval(ratios, prediction=True) == (0.0, float("inf"))


def test_t_quantiles():
    assert t_quantile_975(1) == 12.706 and t_quantile_975(2) == 4.303
    assert t_quantile_975(100) == 1.96


def test_validation_needs_two_rounds_unless_it_is_off():
    with pytest.raises(UsageError, match="--validation-rounds 1"):
        StudySettings(validate_top=2, validation_rounds=1)
    with pytest.raises(UsageError, match="--validate-top -1"):
        StudySettings(validate_top=-1)
    assert StudySettings(validate_top=0, validation_rounds=1).validate_top == 0


def test_report_round_trips_through_json_attrs():
    report = ValidationReport(3, (candidate(1, [1.1, 1.2, 1.3], (0, 1), [0.01] * 3),), 1, "",
                              (1.0, 1.0, 1.0), 7)
    again = ValidationReport.from_dict(report.to_dict())
    assert again == report and again.candidate(1).speedup == 1.2


def test_simplicity_is_counted_from_the_space_default_which_is_simplest():
    space_default = TuningConfig(programs=ProgramConfig("network", "nhwc"),
                                 kernels=(KernelChoice("w1", "onednn", ()),))
    other_layout = dataclasses.replace(space_default, programs=ProgramConfig("network", "any"))
    other_kernel = dataclasses.replace(space_default,
                                       kernels=(KernelChoice("w1", "onednn", (("impl", 2),)),))
    assert complexity(space_default, space_default) == (0, 0)
    assert complexity(other_layout, space_default) == (0, 1)
    assert complexity(TuningConfig(), space_default) == (0, 2)  # programs off: two knobs differ
    assert complexity(other_kernel, space_default) == (1, 0)


def test_the_default_and_the_screening_incumbent_are_validated_with_the_top():
    import types

    import optuna

    from tuner.config import KernelChoice
    from tuner.trial.result import Status, TrialResult
    from tuner.storages import attributes as attrs
    from tuner.storages.attributes import StudyKey, TrialKey
    from tuner.study.validation import distinct_top, with_references
    from tests.fixtures.records import metrics

    study = optuna.create_study(direction="maximize")
    for value, origin, impl in ((9.0, "default", None), (12.0, "sampler", 0),
                                (11.0, "sampler", 1), (8.0, "workload_screening", 2)):
        config = TuningConfig(programs=ProgramConfig("network", "nhwc"), kernels=(
            KernelChoice("w", "onednn", (("impl", impl),)),) if impl is not None else ())
        result = TrialResult(Status.OK, metrics(value))
        study.add_trial(optuna.trial.create_trial(value=value, user_attrs={
            TrialKey.RESULT.value: result.to_dict(), TrialKey.CONFIG.value: config.to_dict(),
            TrialKey.ORIGIN.value: origin}))
    run = types.SimpleNamespace(study=study)
    top = distinct_top(run, 1)
    assert [t.number for t in with_references(run, top)] == [1, 0]
    attrs.put(study, StudyKey.INCUMBENT, 3)  # screening's result, timed in a slow window
    assert [t.number for t in with_references(run, top)] == [1, 0, 3]
    assert [t.number for t in with_references(run, distinct_top(run, 4))] == [1, 2, 0, 3]
    attrs.put(study, StudyKey.INCUMBENT, 0)  # the default itself: not twice
    assert [t.number for t in with_references(run, top)] == [1, 0]


@pytest.mark.parametrize("again, expected_winner, words", [
    ([[53.0, 44.0, 45.0], [52.5, 44.5, 44.8]], 1, "but not in 3 more rounds"),  # equal: default
    ([[53.0, 44.0, 45.0], [46.0, 39.0, 40.0]], 6, "confirmed over the space's default"),
])
def test_a_winner_over_the_default_is_confirmed_in_fresh_processes(monkeypatch, tmp_path, again,
                                                                   expected_winner, words):
    """The validation on a 2-vCPU AMD Zen 5 host that claimed 1.131x CI [1.016, 1.237] over the
    default for a configuration that ran at 0.998x of it paired in one process: its figures."""
    import types

    from tuner.study import validation

    default = ValidatedCandidate(1, (46.6, 39.0, 41.5), (166.7, 147.8, 156.0), (0, 0),
                                 rel_se=(0.013,) * 3)
    winner = ValidatedCandidate(6, (53.9, 44.1, 44.6), (192.9, 167.2, 167.9), (0, 1),
                                rel_se=(0.013,) * 3)
    assert choose_winner([default, winner])[0] == 6
    assert relative(winner, default).interval[0] > 1.0
    calls = []

    def measured(run, configs, workdir, rounds):
        calls.append((list(configs), workdir.name, rounds))
        return [ValidatedCandidate(n, tuple(t), tuple(t), (0, 0), rel_se=(0.013,) * 3)
                for n, t in zip(configs, again)], []

    monkeypatch.setattr(validation, "_measured", measured)
    run = types.SimpleNamespace(directory=tmp_path)
    configs = {1: TuningConfig(), 6: TuningConfig(programs=ProgramConfig("network", "any"))}
    chosen, note = validation._confirmed(run, [default, winner], configs, 6, "", 3)
    assert calls == [([6, 1], "confirmation", 3)]
    assert chosen == expected_winner and words in note and "\n" not in note


def test_no_confirmation_where_the_default_wins_or_is_within_noise(monkeypatch, tmp_path):
    import types

    from tuner.study import validation

    monkeypatch.setattr(validation, "_measured", lambda *args: pytest.fail("measured again"))
    run = types.SimpleNamespace(directory=tmp_path)
    default = candidate(1, [100.0, 104.0, 98.0], (0, 0), (0.02,) * 3)
    close = candidate(2, [101.0, 103.0, 99.0], (1, 0), (0.02,) * 3)
    assert validation._confirmed(run, [default, close], {}, 1, "n", 3) == (1, "n")
    assert validation._confirmed(run, [default, close], {}, 2, "n", 3) == (2, "n")
    assert validation._confirmed(run, [close], {}, 2, "", 3) == (2, "")  # no default validated
