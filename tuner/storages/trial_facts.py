"""The facts stored on a trial (as Optuna trial user attributes, tuner.storages.attributes):
its record, configuration, provenance, and the rankings read from them."""
from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.config import TuningConfig
from tuner.trial.result import Status, TrialResult
from tuner.storages import attributes as attrs
from tuner.storages.attributes import TrialKey

ERROR_ATTR_LIMIT = 2000


def store_attrs(result: TrialResult, config: TuningConfig,
                baseline: bool) -> dict[TrialKey, object]:
    """The attributes a trial's end stores: its record (error text cut to its last
    ``ERROR_ATTR_LIMIT`` characters), configuration, whether it is a baseline, its hash."""
    data = result.to_dict()
    data["error"] = data["error"][-ERROR_ATTR_LIMIT:]
    return {TrialKey.RESULT: data, TrialKey.CONFIG: config.to_dict(), TrialKey.BASELINE: baseline,
            TrialKey.CONFIG_HASH: config.canonical_hash()}


def trial_count(study: optuna.Study) -> int:
    """How many trials the study holds, without copying them (``len(study.trials)`` would)."""
    return len(study.get_trials(deepcopy=False))


def measured_before(trials: list[FrozenTrial], config: TuningConfig) -> FrozenTrial | None:
    """The first finished trial that measured the same canonical configuration (ran, not reused)."""
    digest = config.canonical_hash()
    return next((t for t in trials if attrs.trial_get(t, TrialKey.CONFIG_HASH) == digest
                 and t.state.is_finished() and not attrs.has(t, TrialKey.REUSED_FROM)
                 and attrs.trial_get(t, TrialKey.RESULT)), None)


def origin(trial: FrozenTrial) -> str:
    """``baseline``, the enqueued starting point it is (``TrialKey.ORIGIN``), or ``sampler``."""
    return "baseline" if is_baseline(trial) else attrs.trial_get(trial, TrialKey.ORIGIN, "sampler")


def trial_result(trial: FrozenTrial) -> TrialResult | None:
    data = attrs.trial_get(trial, TrialKey.RESULT)
    return TrialResult.from_dict(data) if data else None


def trial_config(trial: FrozenTrial) -> TuningConfig:
    return TuningConfig.from_dict(attrs.trial_get(trial, TrialKey.CONFIG, {}))


def is_baseline(trial: FrozenTrial) -> bool:
    return bool(attrs.trial_get(trial, TrialKey.BASELINE))


def ok_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Completed trials whose output matched the reference (the only ones that can win)."""
    return [t for t in trials if t.state == TrialState.COMPLETE and (r := trial_result(t))
            and r.ok and r.metrics is not None]


def is_measured_baseline(trial: FrozenTrial) -> bool:
    """A baseline that measured (also when it breaks a constraint such as the memory budget:
    it stays the reference for speedups, but then is never a winner)."""
    return is_baseline(trial) and bool(r := trial_result(trial)) and r.status in (
        Status.OK, Status.CONSTRAINT_VIOLATED)


def baseline_trial(trials: list[FrozenTrial], host_key: str | None = None) -> FrozenTrial | None:
    """The first measured untuned baseline; with ``host_key``, the first of that host (a
    baseline without a host attribute, from before hosts were recorded, counts for any)."""
    return next((t for t in trials if is_measured_baseline(t)
                 and (host_key is None or trial_host_key(t) in (None, host_key))), None)


def trial_host_key(trial: FrozenTrial) -> str | None:
    """The key of the host that ran the trial (tuner.study.hosts.Host.key), None if unknown."""
    host = attrs.trial_get(trial, TrialKey.HOST)
    return host.get("key") if isinstance(host, dict) else None


def ranked_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Ok trials best first by the study's first objective (Pareto members first)."""
    trials = ok_trials(study.get_trials(deepcopy=False))
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    pareto = {t.number for t in study.best_trials} if len(study.directions) > 1 else set()
    return sorted(trials, key=lambda t: (t.number not in pareto,
                                         -t.values[0] if maximize else t.values[0]))
