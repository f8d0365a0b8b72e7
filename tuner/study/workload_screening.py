"""Workload screening: the best trial's heaviest workload, its choice moved one step at a time.

The sampler draws every parameter of the focus's workloads at once (tuner.space.focus), and a
draw that changes one workload for the better usually changes another for the worse. Screening
is the search's local step, as Kernel Tuner's greedy strategies take one: the guiding trial
(``tuner.space.focus.guide``, the best ranked trial that recorded workload times), with the
choice of one workload moved to each neighbour in turn (``KernelKnobs.workload_neighbours``:
each kernel parameter to an adjacent value, then each other kernel that can run it), all else
unchanged. Where a neighbour wins it becomes the guide and its own heaviest workload is screened
next: a coordinate descent over the workloads where the time is.

Rules:

- It runs under the study's ask lock (tuner.study.loop), only when no trial is waiting: the
  starting points and the previous screening are asked first.
- The workload screened is the first of the guide's focus, heaviest first, whose choice in the
  guide has not been screened before (``StudyKey.SCREENED`` holds the (workload, choice) pairs:
  no pair is screened twice, by any worker). None left: nothing is enqueued, the sampler goes on.
- Neighbours the study has measured already (the step back to the previous guide) are left
  out; at most ``limit`` trials are enqueued (the caller's share of its remaining trials),
  marked ``origin`` ``workload_screening``.
"""
from __future__ import annotations

import dataclasses

import optuna
from optuna.trial import TrialState

from tuner.config import KernelChoice
from tuner.space.focus import guide
from tuner.space.space import SearchSpace
from tuner.study import attributes as attrs
from tuner.study import records
from tuner.study.attributes import StudyKey

ORIGIN = "workload_screening"


def _pair(choice: KernelChoice) -> list[str]:
    return [choice.workload, f"{choice.kernel} {dict(choice.params)}"]


def enqueue_workload_screening(study: optuna.Study, space: SearchSpace, limit: int) -> int:
    """Enqueue the next workload's neighbours of the guiding trial (see module); how many."""
    if limit <= 0 or space.kernels is None or not space.kernels.workloads:
        return 0
    if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        return 0
    found = guide(study)
    if found is None:
        return 0
    screened = attrs.get(study, StudyKey.SCREENED, [])
    focus = space.kernels.focus.select(found.workload_ms, (g.key for g in space.kernels.workloads))
    for key in focus:
        choice = found.choices.get(key)
        if choice is None or _pair(choice) in screened:
            continue
        attrs.put(study, StudyKey.SCREENED, [*screened, _pair(choice)])
        trials = study.get_trials(deepcopy=False)
        config = records.trial_config(trials[found.number])
        neighbours = [dataclasses.replace(config, kernels=kernels)
                      for kernels in space.kernels.workload_neighbours(config.kernels, key)]
        neighbours = [n for n in neighbours if records.measured_before(trials, n) is None][:limit]
        for neighbour in neighbours:
            study.enqueue_trial(space.params_for(neighbour),
                                user_attrs={records.ORIGIN_ATTR: ORIGIN})
        return len(neighbours)
    return 0
