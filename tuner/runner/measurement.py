"""How a trial is timed, how memory is read, how its output is compared with the reference."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from tuner.errors import UsageError


@dataclass(frozen=True)
class MeasureSettings:
    """Timing protocol of one trial.

    After compilation, ``warmup_runs`` untimed forward passes; then timed passes until at least
    ``min_runs`` passes AND ``min_seconds`` of timed work are done, stopping early only at
    ``max_seconds`` (with at least one timed pass). An output whose max |out - ref| / max |ref|
    exceeds ``rel_tolerance`` is a wrong result.
    """

    warmup_runs: int = 1
    min_runs: int = 3
    min_seconds: float = 1.0
    max_seconds: float = 60.0
    rel_tolerance: float = 1e-3

    def __post_init__(self) -> None:
        if self.warmup_runs < 0 or self.min_runs < 1:
            raise UsageError("measurement: warmup runs must be >= 0 and timed runs >= 1")
        if not 0 <= self.min_seconds <= self.max_seconds:
            raise UsageError("measurement: need 0 <= min_seconds <= max_seconds")
        if self.rel_tolerance <= 0:
            raise UsageError("measurement: rel_tolerance must be positive")

    def to_dict(self) -> dict:
        return asdict(self)


def time_runs(run: Callable[[], None], settings: MeasureSettings) -> list[float]:
    """Seconds of each timed call of ``run`` under the protocol of ``settings``."""
    for _ in range(settings.warmup_runs):
        run()
    durations: list[float] = []
    started = time.perf_counter()
    while True:
        begin = time.perf_counter()
        run()
        durations.append(time.perf_counter() - begin)
        elapsed = time.perf_counter() - started
        done = len(durations) >= settings.min_runs and elapsed >= settings.min_seconds
        if done or elapsed >= settings.max_seconds:
            return durations


def latency_summary(durations: list[float], batch_size: int) -> dict[str, float]:
    ms = np.asarray(durations) * 1e3
    return {
        "latency_mean_ms": float(ms.mean()),
        "latency_p50_ms": float(np.percentile(ms, 50)),
        "latency_p90_ms": float(np.percentile(ms, 90)),
        "latency_p99_ms": float(np.percentile(ms, 99)),
        "throughput_ips": float(batch_size / (ms.mean() / 1e3)),
        "timed_runs": len(durations),
    }


def output_error(output: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(max absolute error, max absolute error / max |reference|); inf on a shape mismatch."""
    if output.shape != reference.shape:
        return float("inf"), float("inf")
    abs_error = float(np.max(np.abs(output.astype(np.float64) - reference)))
    scale = float(np.max(np.abs(reference))) or 1.0
    return abs_error, abs_error / scale


def read_hwm_mb() -> float:
    """The process's resident-set high-water mark (VmHWM) in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM missing from /proc/self/status")


def reset_hwm() -> None:
    """Reset VmHWM to the current resident size (Linux: write 5 to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
