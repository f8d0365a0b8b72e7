"""The workload focus: which workloads a guided trial draws its per-workload knobs for.

When the sampler draws per-workload knobs (``kernels.choose_per_workload`` or
``kernels.tile_per_workload``), only the workloads that hold most of the time get their own
draws; every other workload keeps the kernel and parameters it has in the guide, so that the
trials are spent where the time is (as TVM's task scheduler weights each task by its share of
the end-to-end latency).

Rules:

- The guide is given to the space (``Guide``: a measured trial's number, per-workload
  milliseconds per inference and kernel choices); the study chooses it and stores the focus on
  the trial (tuner.study.guide). Without a guide there is no focus (every workload is drawn).
- The focus is the fewest workloads, largest share first, whose times sum to at least
  ``coverage`` of all the workloads' time, and at most ``max_workloads`` of them (ties: by key).
  ``coverage`` 1.0 with ``max_workloads`` at least the model's workload count is no focus.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from tuner.config import KernelChoice


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
    """The trial the focus comes from: its number, workload times (ms per inference by
    workload key) and kernel choices (by workload key)."""

    number: int
    workload_ms: Mapping[str, float]
    choices: Mapping[str, KernelChoice]

