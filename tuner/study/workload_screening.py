"""Workload screening: the incumbent's heaviest workload, its choice moved one step at a time.

The sampler draws every parameter of the focus's workloads at once (tuner.space.focus), and a
draw that changes one workload for the better usually changes another for the worse. Screening
is the search's local step, as Kernel Tuner's greedy strategies take one: the incumbent, with
the choice of one workload moved to each neighbour in turn (``KernelKnobs.workload_neighbours``:
each kernel parameter to an adjacent value, then each other kernel that can run it), all else
unchanged. A neighbour that beats the incumbent becomes the incumbent, and its own heaviest
workload is screened next: a coordinate descent over the workloads where the time is.

Trials a few minutes apart run on a machine whose speed drifts (10 % here), more than one
workload's choice changes the whole; so neighbours are judged on their workload times (the
program runtime's counters, ``TrialResult.workload_ms``), not on their throughput: a neighbour's
kernel time scaled by the median, over the other workloads, of the incumbent's time over its
own (the machine's speed in its window against the incumbent's), against the incumbent's kernel
time. It wins when that is at least ``MARGIN`` shorter.

Rules:

- It runs under the study's ask lock (tuner.study.loop), only when no trial is waiting: the
  starting points and the previous screening are asked first.
- The first incumbent is the guiding trial (``tuner.study.guide.guide``, the best ranked trial
  that recorded workload times); then the best neighbour that beat it, if any, among the
  finished trials screened from it (``StudyKey.INCUMBENT`` holds its number; validation
  re-measures it with the top trials, tuner.study.validation).
- The workload screened is the first of the incumbent's focus, heaviest first, whose choice has
  not been screened before (``StudyKey.SCREENED`` holds the screened choices as
  ``KernelChoice.to_dict()``: no workload's choice is screened twice, by any worker). None
  left: nothing is enqueued, the sampler goes on.
- Neighbours the study has measured already (the step back), and those this space cannot
  express (an incumbent of a study resumed with another space: its kernel unknown here, a knob
  value outside), are left out; at most ``limit``
  trials are enqueued (the caller's share of its remaining trials), marked ``origin``
  ``workload_screening`` and ``screened_from`` (the incumbent's number and the workload).
"""
from __future__ import annotations

import dataclasses
import statistics
from typing import Mapping

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.space.search_space import SearchSpace
from tuner.storages import attributes as attrs
from tuner.storages import trial_facts
from tuner.storages.attributes import StudyKey, TrialKey
from tuner.study.guide import guide

ORIGIN = "workload_screening"
MARGIN = 0.015
"""How much shorter (share of the incumbent's kernel time) a neighbour's must be to win."""


def _workload_ms(trial: FrozenTrial) -> dict[str, float]:
    result = trial_facts.trial_result(trial)
    return dict(result.workload_ms) if result is not None and result.ok else {}


def drift_corrected_ms(reference: Mapping[str, float], other: Mapping[str, float],
                       workload: str) -> float | None:
    """``other``'s kernel time as if measured in ``reference``'s window: its sum scaled by the
    median, over the workloads both timed except ``workload``, of reference / other (None
    without such a workload)."""
    ratios = [ms / other[key] for key, ms in reference.items()
              if key != workload and ms > 0 and other.get(key, 0) > 0]
    return statistics.median(ratios) * sum(other.values()) if ratios else None


def incumbent_trial(study: optuna.Study) -> FrozenTrial | None:
    """The screening's incumbent (see module), None before the first screening."""
    number = attrs.get(study, StudyKey.INCUMBENT)
    return None if number is None else study.get_trials(deepcopy=False)[number]


def _advanced(trials: list[FrozenTrial], incumbent: FrozenTrial) -> FrozenTrial:
    """The finished neighbour screened from ``incumbent`` that beats it most, else itself."""
    mine = _workload_ms(incumbent)
    best, best_ms = incumbent, sum(mine.values()) * (1 - MARGIN)
    for trial in trials:
        origin = attrs.trial_get(trial, TrialKey.SCREENED_FROM) or {}
        if trial.state != TrialState.COMPLETE or origin.get("incumbent") != incumbent.number:
            continue
        corrected = drift_corrected_ms(mine, _workload_ms(trial), origin.get("workload"))
        if corrected is not None and corrected < best_ms:
            best, best_ms = trial, corrected
    return best


def enqueue_workload_screening(study: optuna.Study, space: SearchSpace, limit: int) -> int:
    """Enqueue the next workload's neighbours of the incumbent (see module); how many."""
    if limit <= 0 or space.kernels is None or not space.kernels.workloads:
        return 0
    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return 0
    number = attrs.get(study, StudyKey.INCUMBENT)
    if number is None:
        found = guide(study)
        if found is None:
            return 0
        number = found.number
    incumbent = _advanced(trials, trials[number])
    if incumbent.number != attrs.get(study, StudyKey.INCUMBENT):
        attrs.put(study, StudyKey.INCUMBENT, incumbent.number)
    config = trial_facts.trial_config(incumbent)
    groups = {g.key: g for g in space.kernels.workloads}
    choices = {c.workload: c.to_dict() for c in config.kernels if c.workload in groups
               and c.kernel in space.kernels.kernel_options(groups[c.workload]).values()}
    screened = attrs.get(study, StudyKey.SCREENED, [])
    focus = space.kernels.focus.select(_workload_ms(incumbent),
                                       (g.key for g in space.kernels.workloads))
    for key in focus:
        if key not in choices or choices[key] in screened:
            continue
        attrs.put(study, StudyKey.SCREENED, [*screened, choices[key]])
        neighbours = [dataclasses.replace(config, kernels=kernels)
                      for kernels in space.kernels.workload_neighbours(config.kernels, key)]
        neighbours = [n for n in neighbours if trial_facts.measured_before(trials, n) is None]
        enqueued = 0
        for neighbour in neighbours:
            try:
                params = space.params_for(neighbour)
            except ValueError:  # an incumbent of a study resumed with another space
                continue
            study.enqueue_trial(params, user_attrs={
                TrialKey.ORIGIN.value: ORIGIN,
                TrialKey.SCREENED_FROM.value: {"incumbent": incumbent.number, "workload": key}})
            enqueued += 1
            if enqueued == limit:
                break
        return enqueued
    return 0
