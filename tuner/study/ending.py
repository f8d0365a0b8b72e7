"""The end of a study: validation of the winners and the export, once per study.

Rules:

- A worker whose loop stops ends the study only if, under the study's lock, the study is
  complete: no trial RUNNING (no other worker mid-trial) and, with ``--study-trials``, that many
  trials finished; and nobody ended it at this trial count yet (``StudyKey.ENDED_BY``). So with
  several workers exactly one validates and exports: the one that finishes the last trial.
- ``python -m tuner.validate`` ends a study on request (``force``), from any machine: what
  it re-measures is measured on that machine, and the report names it.
"""
from __future__ import annotations

import time
from typing import Sequence

from optuna.trial import FrozenTrial, TrialState

from tuner.storages import attributes as attrs
from tuner.storages import trial_facts
from tuner.storages.attributes import StudyKey
from tuner.study.run import StudyRun
from tuner.study.study_callback import StudyCallback
from tuner.study.validation import validate_winners

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def finished_count(run: StudyRun) -> int:
    return len(run.study.get_trials(deepcopy=False, states=FINISHED))


def claim_end(run: StudyRun, force: bool = False) -> bool:
    """Whether this worker ends the study now (see module); records the claim."""
    with run.lock():
        trials = run.study.get_trials(deepcopy=False)
        count = len(trials)
        if not force:
            if any(t.state == TrialState.RUNNING for t in trials):
                return False
            if run.study_trials and finished_count(run) < run.study_trials:
                return False
            ended = attrs.get(run.study, StudyKey.ENDED_BY) or {}
            if ended.get("trials") == count:
                return False
        attrs.put(run.study, StudyKey.ENDED_BY, {"worker": run.worker, "host": run.host.name,
                                                 "trials": count, "at": time.time()})
        return True


def end_study(run: StudyRun, callbacks: Sequence[StudyCallback]) -> FrozenTrial | None:
    """Validate the winners on this host (speed objectives), tell the callbacks, and return
    the trial the export writes (the validated winner, else the best ok trial)."""
    report = (validate_winners(run, run.settings.validate_top, run.settings.validation_rounds)
              if run.objectives[0].is_speed else None)
    if report is not None:
        for callback in callbacks:
            callback.on_validated(run, report)
    winner = (run.study.get_trials(deepcopy=False)[report.winner] if report is not None
              else next(iter(trial_facts.ranked_trials(run.study)), None))
    for callback in callbacks:
        callback.on_search_complete(run, winner)
    return winner
