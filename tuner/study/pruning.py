"""Stopping clearly slower configurations early (Optuna pruners)."""
from __future__ import annotations

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tuner.errors import UsageError
from tuner.trial.protocol import WARMUP_STEP

PRUNER_NAMES = ("best", "median", "none")


class SlowerThanBestPruner(optuna.pruners.BasePruner):
    """Prune a trial whose running objective (reported after each timed run) is, after at least
    ``min_steps`` runs, worse than ``ratio`` times the best completed trial's at the same step:
    below ``ratio x best`` throughput when maximizing, above ``best / ratio`` when minimizing.
    Before ``min_steps`` runs, only a trial worse than ``early_ratio`` times the best (far beyond
    any run-to-run noise) is pruned, so that a configuration many times slower costs one run.

    Step ``WARMUP_STEP`` (0) is the trial's last warmup run, judged by ``early_ratio`` against
    the best trial's own warmup run only (a trial that reported none there prunes nothing at
    step 0): a configuration tens of times slower (MindSpore's builtin operators where the
    best runs programs) then costs no timed run at all.

    Like with like: a process's first timed runs are slower than its steady state (measured
    here: ResNet50's running throughput rises from 13.5 to 21.6 images/s over its first five
    runs), so the best trial's own running value at the same step is the reference; its final
    value only where it reported no value at that step (the baseline reports none). Some start
    slower than others: ResNet50 b1 with the Winograd kernel on every 3x3 convolution ran its
    first two timed runs at 0.52-0.66 of the best trial's running throughput and, in one of
    those two 50-trial studies (AMD EPYC), its fourth at 1.0x; in a third study it stayed
    near 0.6x through its 8th run and was pruned then. Hence ``min_steps`` 4 (progress steps
    are 1, 2, 4, 8, ...: two more runs of a trial between early_ratio and ratio of the best)."""

    def __init__(self, ratio: float = 0.7, min_steps: int = 4, early_ratio: float = 0.4):
        self.ratio = ratio
        self.min_steps = min_steps
        self.early_ratio = early_ratio

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        return self.prunes(study, step, trial.intermediate_values[step])

    def prunes(self, study: optuna.Study, step: int, value: float) -> bool:
        """Whether a trial that reported ``value`` at ``step`` is pruned."""
        ratio = self.ratio if step >= self.min_steps else self.early_ratio
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not completed:
            return False
        maximize = study.direction == StudyDirection.MAXIMIZE
        best = (max if maximize else min)(completed, key=lambda t: t.value)
        if step == WARMUP_STEP and step not in best.intermediate_values:
            return False
        reference = best.intermediate_values.get(step, best.value)
        return value < ratio * reference if maximize else value > reference / ratio


def make_pruner(name: str, n_objectives: int) -> optuna.pruners.BasePruner:
    if name not in PRUNER_NAMES:
        raise UsageError(f"--pruner {name}: unknown (choose from {', '.join(PRUNER_NAMES)})")
    if name == "none" or n_objectives > 1:  # Optuna prunes single-objective studies only
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    return SlowerThanBestPruner()


def prunes_while_under_way(study: optuna.Study, step: int, value: float) -> bool:
    """Whether ``value``, a bound of a run still under way that can only get worse (see
    tuner.trial.protocol), already prunes: only this module's own pruner can say so before
    the value is final (Optuna keeps a step's first report)."""
    pruner = study.pruner
    return isinstance(pruner, SlowerThanBestPruner) and pruner.prunes(study, step, value)
