"""SlowerThanBestPruner: which running values stop a trial, for both directions."""
import optuna
import pytest

from tuner.study.pruning import SlowerThanBestPruner


@pytest.mark.parametrize("direction, best, value, step, pruned", [
    ("maximize", 10.0, 3.0, 1, True),    # first run already 3x slower: far beyond noise
    ("maximize", 10.0, 5.0, 1, False),   # one run only: 2x is not yet decisive
    ("maximize", 10.0, 5.0, 2, True),
    ("maximize", 10.0, 7.5, 5, False),
    ("minimize", 10.0, 30.0, 1, True),   # latency
    ("minimize", 10.0, 20.0, 1, False),
    ("minimize", 10.0, 20.0, 2, True),
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
