"""Stopping clearly slower configurations early (Optuna pruners)."""
from __future__ import annotations

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tuner.errors import UsageError

PRUNER_NAMES = ("best", "median", "none")


class SlowerThanBestPruner(optuna.pruners.BasePruner):
    """Prune a trial whose running objective (reported after each timed run) is, after at least
    ``min_steps`` runs, worse than ``ratio`` times the best completed trial's value: below
    ``ratio x best`` throughput when maximizing, above ``best / ratio`` when minimizing. Before
    ``min_steps`` runs, only a trial worse than ``early_ratio`` times the best (far beyond any
    run-to-run noise) is pruned, so that a configuration many times slower costs one run."""

    def __init__(self, ratio: float = 0.7, min_steps: int = 2, early_ratio: float = 0.4):
        self.ratio = ratio
        self.min_steps = min_steps
        self.early_ratio = early_ratio

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        ratio = self.ratio if step >= self.min_steps else self.early_ratio
        completed = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        if not completed:
            return False
        value = trial.intermediate_values[step]
        if study.direction == StudyDirection.MAXIMIZE:
            return value < ratio * max(completed)
        return value > min(completed) / ratio


def make_pruner(name: str, n_objectives: int) -> optuna.pruners.BasePruner:
    if name not in PRUNER_NAMES:
        raise UsageError(f"--pruner {name}: unknown (choose from {', '.join(PRUNER_NAMES)})")
    if name == "none" or n_objectives > 1:  # Optuna prunes single-objective studies only
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    return SlowerThanBestPruner()
