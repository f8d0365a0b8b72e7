"""Records of what happened to a trial: failures are results, never exceptions."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*:")


class Status(str, Enum):
    OK = "ok"
    COMPILE_ERROR = "compile_error"    # rewrite, kernel build or graph compilation failed/crashed
    RUNTIME_ERROR = "runtime_error"    # the compiled network failed or crashed while running
    TIMEOUT = "timeout"                # killed after --trial-timeout seconds
    WRONG_RESULT = "wrong_result"      # output beyond tolerance of the untuned reference
    USAGE_ERROR = "usage_error"        # the request itself is wrong (e.g. unknown model)
    INVALID_CONFIG = "invalid_config"  # breaks a declared restriction; never run
    PRUNED = "pruned"                  # stopped early: clearly slower than the best so far
    CONSTRAINT_VIOLATED = "constraint_violated"  # measured, but over --max-memory-mb


@dataclass(frozen=True)
class Metrics:
    """What one trial measured, in its own process.

    - ``compile_seconds``: wall time of ``Cell.compile`` (graph build and kernel compilation).
    - ``latency_*_ms``: wall time of one forward pass of a batch (call to host array), over the
      timed runs that follow ``warmup_runs`` untimed ones; p50/p90/p99 by linear interpolation.
    - ``latency_iqr_ms``, ``latency_cv``: spread of the timed runs (interquartile range;
      standard deviation / mean); ``median_rel_precision``: half-width of the median's ~95 %
      confidence interval over the median (inf with fewer than 8 runs).
    - ``throughput_ips``: images per second = batch size / median latency.
    - ``peak_memory_mb``: the process resident-set high-water mark (VmHWM) from just after
      compilation to the end of the timed runs, so it includes MindSpore itself, the weights and
      the graph's buffers. ``compile_peak_memory_mb``: VmHWM up to the end of compilation.
    - ``cpu_utilization``: process CPU time (user + system) divided by wall time over the warm-up
      and timed runs (2.0 = two cores busy); ``os_threads``: the process's threads after the runs.
    - ``max_abs_error``: max |out - ref| against the untuned network's output on the study's
      fixed input; ``max_rel_error``: that divided by max |ref|.
    """

    compile_seconds: float
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_iqr_ms: float
    latency_cv: float
    median_rel_precision: float
    throughput_ips: float
    peak_memory_mb: float
    compile_peak_memory_mb: float
    timed_runs: int
    cpu_utilization: float
    os_threads: int
    max_abs_error: float
    max_rel_error: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrialResult:
    """The outcome of one trial. ``metrics`` is set whenever measurement ran (also for a wrong
    result); ``error`` holds the reason or the tail of the process's stderr; ``graph_ops`` counts
    the operators of the compiled graph when it was dumped."""

    status: Status
    metrics: Metrics | None = None
    error: str = ""
    wall_seconds: float = 0.0
    graph_ops: dict[str, int] = field(default_factory=dict)
    saved_seconds: float = 0.0  # pruned: the timing it would still have needed, estimated
    phases: tuple[tuple[str, float, float], ...] = ()
    """(phase, start, end) in seconds since the epoch, as the study saw the process: ``build``
    (start to compiled, a gated trial), ``wait`` (at the gate), ``measure`` (released to
    ended); an ungated trial has one ``run``."""
    workload_ms: dict[str, float] = field(default_factory=dict)
    """Per workload key (tuner.kernels.workload), milliseconds per inference that the programs'
    primitives for its layers took while the trial was timed (warm-up and timed runs; layout
    conversions made for those layers included), read from the program runtime's own counters;
    empty without programs. What the search's workload focus (tuner.study.guide) reads."""

    def with_(self, **changes) -> "TrialResult":
        return replace(self, **changes)

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def reason(self, limit: int = 300) -> str:
        """One line saying what went wrong: the status and the error's exception line (the last
        ``SomethingError: ...`` line of a traceback, MindSpore's C++ stack after it skipped),
        else its last line."""
        lines = [line.strip() for line in self.error.strip().splitlines() if line.strip()]
        raised = [line for line in lines if _EXCEPTION_LINE.match(line)]
        text = raised[-1] if raised else (lines[-1] if lines else "")
        return f"{self.status.value}: {text[:limit]}"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status.value,
                "metrics": self.metrics.to_dict() if self.metrics else None,
                "error": self.error, "wall_seconds": self.wall_seconds,
                "graph_ops": self.graph_ops, "saved_seconds": self.saved_seconds,
                "phases": [list(p) for p in self.phases], "workload_ms": self.workload_ms}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrialResult":
        return cls(status=Status(data["status"]),
                   metrics=Metrics(**data["metrics"]) if data.get("metrics") else None,
                   error=data.get("error", ""), wall_seconds=data.get("wall_seconds", 0.0),
                   graph_ops=dict(data.get("graph_ops", {})),
                   saved_seconds=data.get("saved_seconds", 0.0),
                   phases=tuple((str(n), float(a), float(b)) for n, a, b in data.get("phases", ())),
                   workload_ms={str(k): float(v)
                                for k, v in (data.get("workload_ms") or {}).items()})
