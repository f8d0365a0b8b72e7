"""How a trial's record and configuration are kept in Optuna (as trial user attributes)."""
from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.config import TuningConfig
from tuner.runner.record import Status, TrialResult

RESULT_ATTR = "result"
CONFIG_ATTR = "config"
BASELINE_ATTR = "baseline"
CONFIG_HASH_ATTR = "config_hash"
REUSED_FROM_ATTR = "reused_from"
ORIGIN_ATTR = "origin"
"""Why the loop enqueued a trial: ``default``, ``tuning_records`` or ``screening``."""
ERROR_ATTR_LIMIT = 2000


def store_attrs(result: TrialResult, config: TuningConfig, baseline: bool) -> dict:
    data = result.to_dict()
    data["error"] = data["error"][-ERROR_ATTR_LIMIT:]
    return {RESULT_ATTR: data, CONFIG_ATTR: config.to_dict(), BASELINE_ATTR: baseline,
            CONFIG_HASH_ATTR: config.canonical_hash()}


def trial_count(study: optuna.Study) -> int:
    """How many trials the study holds, without copying them (``len(study.trials)`` would)."""
    return len(study.get_trials(deepcopy=False))


def measured_before(trials: list[FrozenTrial], config: TuningConfig) -> FrozenTrial | None:
    """The first finished trial that measured the same canonical configuration (ran, not reused)."""
    digest = config.canonical_hash()
    return next((t for t in trials if t.user_attrs.get(CONFIG_HASH_ATTR) == digest
                 and t.state.is_finished() and REUSED_FROM_ATTR not in t.user_attrs
                 and t.user_attrs.get(RESULT_ATTR)), None)


def origin(trial: FrozenTrial) -> str:
    """``baseline``, the enqueued starting point it is (ORIGIN_ATTR), or ``sampler``."""
    return "baseline" if is_baseline(trial) else trial.user_attrs.get(ORIGIN_ATTR, "sampler")


def trial_result(trial: FrozenTrial) -> TrialResult | None:
    data = trial.user_attrs.get(RESULT_ATTR)
    return TrialResult.from_dict(data) if data else None


def trial_config(trial: FrozenTrial) -> TuningConfig:
    return TuningConfig.from_dict(trial.user_attrs.get(CONFIG_ATTR, {}))


def is_baseline(trial: FrozenTrial) -> bool:
    return bool(trial.user_attrs.get(BASELINE_ATTR))


def ok_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Completed trials whose output matched the reference (the only ones that can win)."""
    return [t for t in trials if t.state == TrialState.COMPLETE and (r := trial_result(t))
            and r.ok and r.metrics is not None]


def baseline_trial(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The measured untuned baseline (also when it breaks a constraint such as the memory
    budget: it stays the reference for speedups, but then is never a winner)."""
    return next((t for t in trials if is_baseline(t) and (r := trial_result(t))
                 and r.status in (Status.OK, Status.CONSTRAINT_VIOLATED)), None)


def ranked_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Ok trials best first by the study's first objective (Pareto members first)."""
    trials = ok_trials(study.get_trials(deepcopy=False))
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    pareto = {t.number for t in study.best_trials} if len(study.directions) > 1 else set()
    return sorted(trials, key=lambda t: (t.number not in pareto,
                                         -t.values[0] if maximize else t.values[0]))
