"""What a study optimizes: named objectives read from a trial's metrics."""
from __future__ import annotations

from dataclasses import dataclass

from optuna.study import StudyDirection

from tuner.errors import UsageError
from tuner.trial.result import Metrics


@dataclass(frozen=True)
class Objective:
    name: str
    metric: str
    direction: StudyDirection
    unit: str

    @property
    def is_speed(self) -> bool:
        """Throughput or latency: known while timing runs (pruning), compared as speedups
        (validation); memory is only known at the end."""
        return self.metric in ("throughput_ips", "latency_p50_ms")

    def value(self, metrics: Metrics) -> float:
        return float(getattr(metrics, self.metric))


OBJECTIVES = {
    "throughput": Objective("throughput", "throughput_ips", StudyDirection.MAXIMIZE, "images/s"),
    "latency": Objective("latency", "latency_p50_ms", StudyDirection.MINIMIZE, "ms (p50)"),
    "memory": Objective("memory", "peak_memory_mb", StudyDirection.MINIMIZE, "MiB peak"),
}


def parse_objectives(names: list[str]) -> tuple[Objective, ...]:
    flat = [n.strip() for name in names for n in name.split(",") if n.strip()]
    unknown = [n for n in flat if n not in OBJECTIVES]
    if unknown:
        raise UsageError(f"--objective {unknown[0]}: unknown (choose from {', '.join(OBJECTIVES)})")
    if len(set(flat)) != len(flat) or not flat:
        raise UsageError("--objective: give each objective once")
    return tuple(OBJECTIVES[n] for n in flat)
