"""The guide of a study's per-workload draws, read from its history, and the suggestion it guides.

Every measured trial with programs records, per workload, the milliseconds per inference that
the programs' primitives spent on its layers (``TrialResult.workload_ms``, read from the program
runtime's counters while the trial was timed). The space draws per-workload knobs only for the
workloads of the guide's focus (tuner.space.focus); this module chooses the guide and stores on
the trial what the space did.

Rules:

- The guide is the best completed, validated-against-reference trial (the study's ranking) that
  recorded workload times; before there is one, there is no guide (every workload is drawn).
- A space without per-workload kernel knobs (``SearchSpace.guided`` false) gets no guide.
- The focus of a trial is stored on it (``TrialKey.FOCUS``: the guide's number and the
  workloads it drew); the workloads whose sampled kernel parameters the space repaired, as
  ``TrialKey.REPAIRED``. Neither is stored when empty.
"""
from __future__ import annotations

import optuna

from tuner.config import TuningConfig
from tuner.space.focus import Guide
from tuner.space.search_space import SearchSpace
from tuner.storages import attributes as attrs
from tuner.storages import trial_facts
from tuner.storages.attributes import TrialKey


def guide(study: optuna.Study) -> Guide | None:
    """The best ranked trial that recorded workload times (see module), or None."""
    for trial in trial_facts.ranked_trials(study):
        result = trial_facts.trial_result(trial)
        if result is not None and result.workload_ms:
            config: TuningConfig = trial_facts.trial_config(trial)
            return Guide(trial.number, dict(result.workload_ms),
                         {c.workload: c for c in config.kernels})
    return None


def suggest_config(space: SearchSpace, trial: optuna.Trial) -> TuningConfig:
    """``space``'s configuration for ``trial``, guided by its study's guide; the focus and the
    repaired workloads stored on the trial (see module)."""
    found = guide(trial.study) if space.guided else None
    suggestion = space.suggest(trial, found)
    if suggestion.focus:
        attrs.trial_put(trial, TrialKey.FOCUS,
                        {"guide": found.number, "workloads": list(suggestion.focus)})
    if suggestion.repaired:
        attrs.trial_put(trial, TrialKey.REPAIRED, list(suggestion.repaired))
    return suggestion.config
