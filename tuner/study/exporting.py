"""Turning a study's chosen trial into the exported JSON."""
from __future__ import annotations

import optuna

from tuner.errors import UsageError
from tuner.export_format import ExportedConfig
from tuner.models import TuningTarget
from tuner.study import records
from tuner.study.validation import current_report
from tuner.study.loop import MODEL_INFO_ATTR, SPEEDUP_ATTR, TARGET_ATTR, WEIGHTS_SEED_ATTR


def export_trial(study: optuna.Study, rank: int = 1) -> ExportedConfig:
    """The ``rank``-th best ok trial (1 = best) as an ExportedConfig; for rank 1 the validated
    winner when the study's validation is current (no trial added since)."""
    if TARGET_ATTR not in study.user_attrs:
        raise UsageError(f"study {study.study_name} was not made by tuner.search")
    ranked = records.ranked_trials(study)
    if not ranked:
        raise UsageError(f"study {study.study_name} has no successful trial yet")
    if not 1 <= rank <= len(ranked):
        raise UsageError(f"--rank {rank}: the study has {len(ranked)} successful trials")
    chosen = ranked[rank - 1]
    report = current_report(study) if rank == 1 else None
    validation = {}
    if report is not None:
        chosen = next(t for t in ranked if t.number == report.winner)
        winner = report.candidate(report.winner)
        validation = {"speedup": winner.speedup, "spread": list(winner.spread),
                      "rounds": report.rounds, "note": report.note,
                      "candidates": {str(c.trial): {"speedup": c.speedup, "spread": list(c.spread)}
                                     for c in report.candidates}}
    base = records.baseline_trial(study.get_trials(deepcopy=False))
    info = study.user_attrs.get(MODEL_INFO_ATTR, {})
    return ExportedConfig(
        target=TuningTarget(**study.user_attrs[TARGET_ATTR]),
        config=records.trial_config(chosen),
        fingerprint=info.get("fingerprint", ""),
        mindspore_version=info.get("mindspore_version", ""),
        metrics={**records.trial_result(chosen).metrics.to_dict(),
                 "speedup": chosen.user_attrs.get(SPEEDUP_ATTR)},
        baseline_metrics=records.trial_result(base).metrics.to_dict() if base else {},
        validation=validation,
        study={"name": study.study_name, "trial": chosen.number, "rank": rank,
               "objectives": [d.name.lower() for d in study.directions],
               "weights_seed": study.user_attrs.get(WEIGHTS_SEED_ATTR, 0)})
