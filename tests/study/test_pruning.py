"""SlowerThanBestPruner: which running values stop a trial, for both directions."""
import optuna
import pytest

from tuner.trial.protocol import WARMUP_STEP
from tuner.study.pruning import SlowerThanBestPruner, prunes_while_under_way


@pytest.mark.parametrize("direction, best, value, step, pruned", [
    ("maximize", 10.0, 3.0, 1, True),    # first run already 3x slower: far beyond noise
    ("maximize", 10.0, 5.0, 1, False),   # one run only: 2x is not yet decisive
    ("maximize", 10.0, 5.5, 2, False),   # a slow start (the first runs of some kernels)
    ("maximize", 10.0, 5.0, 4, True),
    ("maximize", 10.0, 7.5, 5, False),
    ("minimize", 10.0, 30.0, 1, True),   # latency
    ("minimize", 10.0, 20.0, 1, False),
    ("minimize", 10.0, 20.0, 4, True),
    ("minimize", 10.0, 13.0, 3, False),
])
def test_prunes_only_clearly_worse_trials(direction, best, value, step, pruned):
    study = optuna.create_study(direction=direction, pruner=SlowerThanBestPruner())
    study.add_trial(optuna.trial.create_trial(value=best))
    trial = study.ask()
    trial.report(value, step)
    assert trial.should_prune() is pruned


def test_nothing_is_pruned_before_a_trial_completed():
    study = optuna.create_study(direction="maximize", pruner=SlowerThanBestPruner())
    trial = study.ask()
    trial.report(0.001, 3)
    assert not trial.should_prune()


@pytest.mark.parametrize("direction, best_running, value, pruned", [
    ("maximize", 6.0, 5.0, False),   # against the best's final 10.0 it would be pruned
    ("maximize", 9.0, 5.0, True),
    ("minimize", 16.0, 20.0, False),  # latency: the best's final 10.0 would prune it
    ("minimize", 11.0, 20.0, True),
])
def test_the_reference_is_the_best_trials_running_value_at_the_same_step(
        direction, best_running, value, pruned):
    study = optuna.create_study(direction=direction, pruner=SlowerThanBestPruner())
    study.add_trial(optuna.trial.create_trial(value=10.0,
                                              intermediate_values={1: 1.0, 4: best_running}))
    trial = study.ask()
    trial.report(value, 4)
    assert trial.should_prune() is pruned


@pytest.mark.parametrize("best_warmup, value, pruned", [
    (None, 0.1, False),  # the best reported no warmup run: nothing to compare step 0 with
    (8.0, 4.0, False),   # half the best's warmup throughput: not decisive
    (8.0, 3.0, True),    # beyond early_ratio of the best's own warmup run
])
def test_the_warmup_step_is_judged_against_the_best_trials_warmup_only(best_warmup, value, pruned):
    study = optuna.create_study(direction="maximize", pruner=SlowerThanBestPruner())
    warmup = {} if best_warmup is None else {WARMUP_STEP: best_warmup}
    study.add_trial(optuna.trial.create_trial(value=10.0, intermediate_values=warmup))
    trial = study.ask()
    trial.report(value, WARMUP_STEP)
    assert trial.should_prune() is pruned


@pytest.mark.parametrize("pruner, value, pruned", [
    (SlowerThanBestPruner(), 3.0, True),    # already beyond early_ratio: the run can only worsen
    (SlowerThanBestPruner(), 4.0, False),
    (optuna.pruners.MedianPruner(), 0.001, False),  # no bound semantics: wait for the value
])
def test_a_warmup_run_under_way_prunes_only_once_its_bound_does(pruner, value, pruned):
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.add_trial(optuna.trial.create_trial(value=10.0, intermediate_values={WARMUP_STEP: 8.0}))
    assert prunes_while_under_way(study, WARMUP_STEP, value) is pruned
