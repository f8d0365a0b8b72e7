"""The trial a study exports (the validated winner, else the best, or the rank-th best or the
best by objective weights) turned into the exported JSON."""
from __future__ import annotations

import optuna

from tuner.errors import UsageError
from tuner.exported_config import ExportedConfig
from tuner.models import TuningTarget
from tuner.storages import trial_facts
from tuner.storages import attributes as attrs
from tuner.storages.attributes import StudyKey, TrialKey
from tuner.study.validation import current_report


def _weighted_choice(study: optuna.Study, trials: list, weights: dict[str, float]):
    """The trial maximizing the weighted sum of its min-max normalized objectives (each turned
    so that 1 is best) among ``trials`` (the Pareto set when the study has several objectives)."""
    names = attrs.get(study, StudyKey.OBJECTIVES, [])
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise UsageError(f"--weights {unknown[0]}: not an objective of this study ({', '.join(names)})")
    pareto = {t.number for t in study.best_trials} if len(study.directions) > 1 else None
    pool = [t for t in trials if pareto is None or t.number in pareto] or trials
    scores = {t.number: 0.0 for t in pool}
    for index, (name, direction) in enumerate(zip(names, study.directions)):
        values = [t.values[index] for t in pool]
        low, high = min(values), max(values)
        for t in pool:
            scaled = (t.values[index] - low) / (high - low) if high > low else 1.0
            if direction == optuna.study.StudyDirection.MINIMIZE and high > low:
                scaled = 1.0 - scaled
            scores[t.number] += weights.get(name, 0.0) * scaled
    return max(pool, key=lambda t: scores[t.number])


def export_trial(study: optuna.Study, rank: int = 1, weights: dict[str, float] | None = None,
                 max_memory_mb: float | None = None) -> ExportedConfig:
    """The ``rank``-th best ok trial (1 = best) as an ExportedConfig.

    With ``max_memory_mb``, trials over that peak memory are left out; with ``weights``
    (objective name -> weight), the member of the Pareto set with the best weighted, normalized
    objectives is taken instead of a rank. Otherwise, for rank 1, the validated winner when the
    study's validation is current (no trial added since).
    """
    if not attrs.has(study, StudyKey.TARGET):
        raise UsageError(f"study {study.study_name} was not made by tuner.search")
    ranked = trial_facts.ranked_trials(study)
    if max_memory_mb is not None:
        ranked = [t for t in ranked
                  if trial_facts.trial_result(t).metrics.peak_memory_mb <= max_memory_mb]
    if not ranked:
        raise UsageError(f"study {study.study_name} has no successful trial"
                         + (f" within {max_memory_mb:g} MiB" if max_memory_mb is not None else " yet"))
    if not 1 <= rank <= len(ranked):
        raise UsageError(f"--rank {rank}: the study has {len(ranked)} eligible trials")
    chosen = _weighted_choice(study, ranked, weights) if weights else ranked[rank - 1]
    report = current_report(study) if rank == 1 and not weights and max_memory_mb is None else None
    validation = {}
    if report is not None:
        chosen = next(t for t in ranked if t.number == report.winner)
        winner = report.candidate(report.winner)
        validation = {"speedup": winner.speedup, "spread": list(winner.spread),
                      "spread_kind": "95% prediction interval of one re-measured round",
                      "interval": list(winner.interval),
                      "observed_range": list(winner.observed_range),
                      "rounds": report.rounds, "note": report.note, "host": report.host,
                      "candidates": {str(c.trial): {"speedup": c.speedup, "spread": list(c.spread),
                                                    "interval": list(c.interval)}
                                     for c in report.candidates}}
    host = trial_facts.trial_host_key(chosen)  # its speedup is over the baseline of its host
    base = trial_facts.baseline_trial(study.get_trials(deepcopy=False), host)
    info = attrs.get(study, StudyKey.MODEL_INFO, {})
    return ExportedConfig(
        target=TuningTarget(**attrs.get(study, StudyKey.TARGET)),
        config=trial_facts.trial_config(chosen),
        fingerprint=info.get("fingerprint", ""),
        mindspore_version=info.get("mindspore_version", ""),
        metrics={**trial_facts.trial_result(chosen).metrics.to_dict(),
                 "speedup": attrs.trial_get(chosen, TrialKey.SPEEDUP)},
        baseline_metrics=trial_facts.trial_result(base).metrics.to_dict() if base else {},
        validation=validation,
        study={"name": study.study_name, "trial": chosen.number, "rank": rank,
               "objectives": [d.name.lower() for d in study.directions],
               "weights_seed": attrs.get(study, StudyKey.WEIGHTS_SEED, 0)})
