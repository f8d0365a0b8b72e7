"""The trials a study starts from: each host's untuned baseline, then (once per study) the
space's default, its variant with the tuning records and the default's one-knob neighbours.

Rules:

- Everything here runs under the study's lock (tuner.storages.coordination), so that whatever the
  timing of the workers the study gets each starting point once.
- A host's baseline is never a WAITING trial that any worker could pop: the worker that needs
  it creates it RUNNING (``claim_baseline``) and measures it before its first other trial.
  ``baseline_state`` says whether this host's baseline is measured, being measured by another
  worker (wait for it), queued by hand (an enqueued trial with the baseline attribute: it is
  asked first), or missing (claim it).
- The other starting points are enqueued by the first worker of a fresh study, marked by
  ``StudyKey.STARTING_POINTS``; one-knob neighbours only as many as that worker's trials allow
  (none left waiting in the storage).
"""
from __future__ import annotations

import dataclasses
from enum import Enum

import optuna
from optuna.trial import TrialState

from tuner.config import TuningConfig
from tuner.errors import UsageError
from tuner.storages import attributes as attrs
from tuner.storages import trial_facts
from tuner.storages.attributes import StudyKey, TrialKey
from tuner.study.run import StudyRun


class BaselineState(Enum):
    MEASURED = "measured"
    RUNNING = "running"    # another worker of this host measures it
    QUEUED = "queued"      # enqueued by hand: the next ask returns it
    MISSING = "missing"


def baseline_state(run: StudyRun) -> BaselineState:
    trials = run.study.get_trials(deepcopy=False)
    if trial_facts.baseline_trial(trials, run.host.key) is not None:
        return BaselineState.MEASURED
    mine = [t for t in trials if trial_facts.is_baseline(t)
            and trial_facts.trial_host_key(t) in (None, run.host.key)]
    if any(t.state == TrialState.RUNNING for t in mine):
        return BaselineState.RUNNING
    if any(t.state == TrialState.WAITING for t in mine):
        return BaselineState.QUEUED
    return BaselineState.MISSING


def claim_baseline(run: StudyRun) -> optuna.Trial:
    """A new RUNNING trial of the untuned configuration for this host, owned by this worker
    (UsageError if the space cannot express the untuned configuration)."""
    try:
        params = run.space.params_for(TuningConfig())
    except ValueError as problem:
        raise UsageError(f"{problem} (every space must also express the untuned baseline: "
                         f"give each knob its untuned value among its choices)") from None
    template = optuna.trial.create_trial(
        state=TrialState.RUNNING,
        system_attrs={"fixed_params": params},
        user_attrs={TrialKey.BASELINE.value: True, TrialKey.HOST.value: run.host.to_dict(),
                    TrialKey.WORKER.value: run.worker})
    trial_id = run.study._storage.create_new_trial(run.study._study_id, template_trial=template)
    return optuna.Trial(run.study, trial_id)


def enqueue_starting_points(run: StudyRun, n_trials: int) -> None:
    """The default, tuning-record and screening trials, once per study (see module)."""
    study = run.study
    if attrs.get(study, StudyKey.STARTING_POINTS):
        return
    attrs.put(study, StudyKey.STARTING_POINTS, True)
    trials = study.get_trials(deepcopy=False)
    if not run.settings.start_from_default or any(not trial_facts.is_baseline(t) for t in trials):
        return
    default = run.space.default_config()
    if default != TuningConfig():
        study.enqueue_trial(run.space.params_for(default),
                            user_attrs={TrialKey.ORIGIN.value: "default"})
        _enqueue_warm_start(run, default)
    room = min(n_trials, run.study_trials or n_trials) - trial_facts.trial_count(study)
    for neighbour in run.space.one_knob_neighbours(default)[:max(room, 0)]:
        study.enqueue_trial(run.space.params_for(neighbour),
                            user_attrs={TrialKey.ORIGIN.value: "screening"})


def _enqueue_warm_start(run: StudyRun, default: TuningConfig) -> None:
    """The space's default with every kernel workload that has a tuning record on this
    toolchain set to the recorded tiling (see tuner.storages.tuning_records)."""
    if not (run.settings.warm_start and run.records and run.space.kernels and default.kernels):
        return
    groups = {g.key: g for g in run.space.kernels.workloads}
    found = run.records.best_choices(
        ((c.workload, groups[c.workload].workload.batchless_key, c.kernel)
         for c in default.kernels if c.workload in groups), run.toolchain())
    if not found:
        return
    kernels = tuple(found.get(c.workload, (c, ""))[0] for c in default.kernels)
    run.study.enqueue_trial(run.space.params_for(dataclasses.replace(default, kernels=kernels)),
                            user_attrs={TrialKey.WARM_START.value:
                                        {k: src for k, (_, src) in found.items()},
                                        TrialKey.ORIGIN.value: "tuning_records"})
