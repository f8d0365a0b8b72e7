"""How a trial is timed, how memory is read, how its output is compared with the reference."""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, Protocol

import numpy as np

from tuner.errors import UsageError
from tuner.trial.result import Metrics, Status, TrialResult


@dataclass(frozen=True)
class MeasureSettings:
    """Timing protocol of one trial.

    After compilation, ``warmup_runs`` untimed forward passes; then timed passes until at least
    ``min_runs`` passes and ``min_seconds`` of timed work are done AND the 95 % confidence
    interval of the median latency is within ``rel_precision`` of the median (half-width /
    median); ``max_seconds`` of timed work stops it regardless (with at least one timed pass;
    the record then says the precision was not reached). An output whose
    max |out - ref| / max |ref| exceeds ``rel_tolerance`` is a wrong result.

    With ``slots`` > 1 the timed runs come in that many slots, each under the rules above
    (``min_runs``, ``min_seconds``, ``max_seconds``, ``rel_precision`` apply to a slot; the
    warmup comes before the first): between two slots the process idles until it is let go
    (a ``SlotGate``), so that a benchmark can time other engines in between
    (tuner.runner.interleave). Metrics and the output check cover the runs of all slots.

    The untuned baseline is timed under ``for_baseline()``: at most ``BASELINE_MAX_SECONDS`` of
    timed work (a few of its seconds-long runs: between processes its figure varies by ~20 %
    on these machines, far more than more runs in one process would narrow).
    """

    warmup_runs: int = 1
    min_runs: int = 3
    min_seconds: float = 1.0
    max_seconds: float = 30.0
    rel_tolerance: float = 1e-3
    rel_precision: float = 0.03
    slots: int = 1

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise UsageError("measurement: slots must be >= 1")
        if self.warmup_runs < 0 or self.min_runs < 1:
            raise UsageError("measurement: warmup runs must be >= 0 and timed runs >= 1")
        if not 0 <= self.min_seconds <= self.max_seconds:
            raise UsageError("measurement: need 0 <= min_seconds <= max_seconds")
        if self.rel_tolerance <= 0 or self.rel_precision <= 0:
            raise UsageError("measurement: rel_tolerance and rel_precision must be positive")

    def to_dict(self) -> dict:
        return asdict(self)

    def for_baseline(self) -> "MeasureSettings":
        return replace(self, max_seconds=min(self.max_seconds, BASELINE_MAX_SECONDS),
                       min_seconds=min(self.min_seconds, BASELINE_MAX_SECONDS))


BASELINE_MAX_SECONDS = 10.0


MIN_RUNS_FOR_INTERVAL = 8
"""The fewest samples for which median_confidence_interval is bounded."""


def median_confidence_interval(samples: list[float], z: float = 1.96) -> tuple[float, float]:
    """Distribution-free ~95 % interval of the median from order statistics; (-inf, inf) when
    there are too few samples (fewer than 8) to bound it."""
    n = len(samples)
    lower = int(np.floor(n / 2 - z * np.sqrt(n) / 2))
    upper = int(np.ceil(n / 2 + z * np.sqrt(n) / 2))
    if lower < 0 or upper > n - 1:
        return float("-inf"), float("inf")
    ordered = sorted(samples)
    return ordered[lower], ordered[upper]


def relative_precision(samples: list[float]) -> float:
    """Half-width of the median's confidence interval divided by the median."""
    low, high = median_confidence_interval(samples)
    return (high - low) / 2 / float(np.median(samples))


def time_runs(run: Callable[[], None], settings: MeasureSettings,
              on_run: Callable[[list[float]], None] | None = None,
              on_warmup: Callable[[float], None] | None = None) -> list[float]:
    """Seconds of each timed call of ``run`` under the protocol of ``settings``.

    ``on_run`` is called with the durations so far after every timed call (progress reports),
    ``on_warmup`` with the seconds of the last warmup call (where there is one).
    """
    for remaining in range(settings.warmup_runs, 0, -1):
        begin = time.perf_counter()
        run()
        if remaining == 1 and on_warmup is not None:
            on_warmup(time.perf_counter() - begin)
    durations: list[float] = []
    started = time.perf_counter()
    while True:
        begin = time.perf_counter()
        run()
        durations.append(time.perf_counter() - begin)
        if on_run is not None:
            on_run(durations)
        elapsed = time.perf_counter() - started
        enough = len(durations) >= settings.min_runs and elapsed >= settings.min_seconds
        if enough and relative_precision(durations) <= settings.rel_precision:
            return durations
        if elapsed >= settings.max_seconds:
            return durations


class SlotGate(Protocol):
    """What a measurement timed in slots (``MeasureSettings.slots``) does between them."""

    def wait(self, slot: int) -> None:
        """Idle until slot ``slot`` (from 1 on) may be timed."""

    def done(self, slot: int, durations: list[float]) -> None:
        """Slot ``slot`` was timed: the seconds of each of its runs."""


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def measured_result(infer: Callable[[], np.ndarray], settings: MeasureSettings, batch_size: int,
                    reference: np.ndarray, compile_seconds: float, compile_peak_mb: float,
                    on_run: Callable[[list[float]], None] | None = None,
                    engine: str = "the configured network",
                    on_warmup: Callable[[float], None] | None = None,
                    gate: SlotGate | None = None, batches_per_call: int = 1) -> TrialResult:
    """Time ``infer`` (one inference, returning its output as a host array) under ``settings``
    (in slots, with ``gate`` between them, where ``settings.slots`` > 1) and compare its last
    output with ``reference``: the record every engine's trial returns (a ``wrong_result`` when
    the error is beyond ``settings.rel_tolerance``). An exception of ``infer`` propagates: the
    caller knows which failure it is. A call of ``infer`` that runs ``batches_per_call``
    inferences at once (requests served concurrently) is recorded as its seconds divided by
    that number: the metrics and the slots' figures are then seconds per batch at
    that concurrency, not one request's latency (``on_run`` sees the calls' own seconds)."""
    if settings.slots > 1 and gate is None:
        raise ValueError("a measurement timed in slots needs a SlotGate")
    outputs: list[np.ndarray] = []

    def run_once() -> None:
        outputs[:] = [infer()]

    durations: list[float] = []
    cpu_seconds = wall_seconds = 0.0
    for slot in range(settings.slots):
        if slot:
            gate.wait(slot)
        cpu_before, wall_before = _cpu_seconds(), time.perf_counter()
        timed = time_runs(run_once, settings if slot == 0 else replace(settings, warmup_runs=0),
                          on_run=on_run, on_warmup=on_warmup)
        timed = [seconds / batches_per_call for seconds in timed]
        cpu_seconds += _cpu_seconds() - cpu_before
        wall_seconds += time.perf_counter() - wall_before
        if gate is not None:
            gate.done(slot, timed)
        durations += timed
    cpu_utilization = cpu_seconds / wall_seconds
    abs_error, rel_error = output_error(outputs[-1], reference)
    metrics = Metrics(compile_seconds=compile_seconds, **latency_summary(durations, batch_size),
                      peak_memory_mb=read_hwm_mb(), compile_peak_memory_mb=compile_peak_mb,
                      cpu_utilization=cpu_utilization,
                      os_threads=len(os.listdir("/proc/self/task")),
                      max_abs_error=abs_error, max_rel_error=rel_error)
    if not rel_error <= settings.rel_tolerance:
        return TrialResult(Status.WRONG_RESULT, metrics,
                           f"{engine}'s output differs from the untuned reference: max rel "
                           f"error {rel_error:.3g} > tolerance {settings.rel_tolerance:g}")
    return TrialResult(Status.OK, metrics)


def latency_summary(durations: list[float], batch_size: int) -> dict[str, float]:
    ms = np.asarray(durations) * 1e3
    q1, median, q3 = np.percentile(ms, [25, 50, 75])
    return {
        "latency_mean_ms": float(ms.mean()),
        "latency_p50_ms": float(median),
        "latency_p90_ms": float(np.percentile(ms, 90)),
        "latency_p99_ms": float(np.percentile(ms, 99)),
        "latency_iqr_ms": float(q3 - q1),
        "latency_cv": float(ms.std() / ms.mean()),
        "median_rel_precision": float(relative_precision(durations)),
        "throughput_ips": float(batch_size / (median / 1e3)),
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


def machine_noise(repeats: int = 40, size: int = 384) -> dict[str, float]:
    """How steady this machine is right now: the coefficient of variation (and the relative
    median-CI half-width) of ``repeats`` timings of the same float32 matmul."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(np.float32)
    durations = []
    for _ in range(repeats + 3):
        begin = time.perf_counter()
        a @ a
        durations.append(time.perf_counter() - begin)
    samples = np.asarray(durations[3:])
    return {"noise_cv": float(samples.std() / samples.mean()),
            "noise_median_rel_precision": float(relative_precision(list(samples)))}
