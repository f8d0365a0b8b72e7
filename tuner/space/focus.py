"""Profile-guided allocation of the per-workload trials: the workload focus.

Every measured trial with programs records, per workload, the milliseconds per inference that
the programs' primitives spent on its layers (``TrialResult.workload_ms``, read from the program
runtime's counters while the trial was timed). When the sampler draws per-workload knobs
(``kernels.choose_per_workload`` or ``kernels.tile_per_workload``), only the workloads that hold
most of the time get their own draws; every other workload keeps the kernel and parameters it
has in the best trial so far, so that the trials are spent where the time is (as TVM's task
scheduler weights each task by its share of the end-to-end latency).

Rules:

- The guide is the best completed, validated-against-reference trial (the study's ranking) that
  recorded workload times; before there is one, there is no focus (every workload is drawn).
- The focus is the fewest workloads, largest share first, whose times sum to at least
  ``coverage`` of all the workloads' time, and at most ``max_workloads`` of them (ties: by key).
  ``coverage`` 1.0 with ``max_workloads`` at least the model's workload count is no focus.
- The focus of a trial is stored on it (``TrialKey.FOCUS``): which workloads it drew.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import optuna

from tuner.config import KernelChoice, TuningConfig
from tuner.storages import trial_facts


@dataclass(frozen=True)
class WorkloadFocus:
    coverage: float = 0.8
    max_workloads: int = 6

    def __post_init__(self) -> None:
        if not 0.0 < self.coverage <= 1.0:
            raise ValueError(f"focus.coverage: {self.coverage!r} is not in (0, 1]")
        if isinstance(self.max_workloads, bool) or not isinstance(self.max_workloads, int) \
                or self.max_workloads < 1:
            raise ValueError(f"focus.max_workloads: {self.max_workloads!r} is not an integer >= 1")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "WorkloadFocus":
        if not isinstance(data, Mapping):
            raise ValueError("focus: expected a mapping {coverage, max_workloads}")
        unknown = sorted(set(data) - {"coverage", "max_workloads"})
        if unknown:
            raise ValueError(f"focus: unknown key {unknown[0]!r} (keys: coverage, max_workloads)")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {"coverage": self.coverage, "max_workloads": self.max_workloads}

    def select(self, workload_ms: Mapping[str, float], keys: Iterable[str]) -> tuple[str, ...]:
        """The focus among ``keys`` (the model's workloads) for these workload times."""
        timed = sorted(((workload_ms[k], k) for k in set(keys) if workload_ms.get(k, 0.0) > 0),
                       key=lambda item: (-item[0], item[1]))
        total = sum(ms for ms, _ in timed)
        chosen: list[str] = []
        covered = 0.0
        for ms, key in timed:
            if len(chosen) >= self.max_workloads or (chosen and covered >= self.coverage * total):
                break
            chosen.append(key)
            covered += ms
        return tuple(chosen)


@dataclass(frozen=True)
class Guide:
    """The trial the focus comes from: its number, workload times and kernel choices."""

    number: int
    workload_ms: Mapping[str, float]
    choices: Mapping[str, KernelChoice]


def guide(study: optuna.Study) -> Guide | None:
    """The best ranked trial that recorded workload times (see module), or None."""
    for trial in trial_facts.ranked_trials(study):
        result = trial_facts.trial_result(trial)
        if result is not None and result.workload_ms:
            config: TuningConfig = trial_facts.trial_config(trial)
            return Guide(trial.number, dict(result.workload_ms),
                         {c.workload: c for c in config.kernels})
    return None
