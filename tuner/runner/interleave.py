"""Several engines timed in alternation, each in a process of its own that compiles once: their
ratios measured under the same machine conditions, slot by slot (tuner.bench anchors).

On a shared machine whose speed drifts over seconds (these 2-vCPU hosts: from one minute to
the next the same network runs 30 % faster or slower), timing one engine in a process, then
the other in another, compares two stretches of the machine as much as two engines. Here every
engine's process compiles first (``compile_jobs`` at a time, then waits at its gate), then each
times a short slot in turn, alone on the machine while the others idle at their gates; slot
after slot, the order is reversed every time (A B, B A, A B, ...) so that no engine always
follows the same one. A
slot's figure is the median of its runs (tuner.trial.measurement, ``MeasureSettings.slots``).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tuner.runner.isolate import JsonLinesReader, TrialProcess
from tuner.trial.protocol import SLOTS_FILE, slot_go_file
from tuner.trial.result import TrialResult
from tuner.trial.request import TrialRequest

POLL_SECONDS = 0.01
SETTLE_SECONDS = 0.05  # between two slots: the last one's threads have gone to sleep


@dataclass(frozen=True)
class SlotTiming:
    """One slot of an engine's runs: how many, their median seconds and coefficient of
    variation (a line of the trial's SLOTS_FILE)."""

    runs: int
    median_s: float
    cv: float


@dataclass(frozen=True)
class InterleavedResult:
    """One engine's record (over the runs of all its slots) and each slot it timed (fewer than
    asked where it failed or timed out; ``result`` says why)."""

    result: TrialResult
    slots: tuple[SlotTiming, ...]

    @property
    def slot_medians_s(self) -> tuple[float, ...]:
        return tuple(slot.median_s for slot in self.slots)


def run_interleaved(trials: Sequence[tuple[TrialRequest, Path]], timeout: float,
                    compile_jobs: int | None = None) -> list[InterleavedResult]:
    """Each (measurement request, workdir) timed in ``request.measure.slots`` slots (the same
    number for all), alternating as the module says. At most ``compile_jobs`` processes compile
    at once (None: all), a process starting when the one that many places before it is ready
    (compiled networks and their memory add up either way; the peaks of compiling do not).
    ``timeout`` applies to compiling and to each slot; an engine that fails or times out drops
    out of the later slots."""
    if compile_jobs is not None and compile_jobs < 1:
        raise ValueError(f"compile_jobs must be at least 1, not {compile_jobs}")
    slots = {request.measure.slots for request, _ in trials}
    if len(slots) != 1:
        raise ValueError(f"interleaved trials must have the same number of slots, not {slots}")
    processes = [TrialProcess(dataclasses.replace(request, gated=True), workdir, timeout)
                 for request, workdir in trials]
    readers = [JsonLinesReader(workdir / SLOTS_FILE) for _, workdir in trials]
    timed: list[list[SlotTiming]] = [[] for _ in processes]
    try:
        window = compile_jobs or len(processes)
        alive: list[bool] = []
        for index, process in enumerate(processes):
            if index >= window:
                alive.append(processes[index - window].wait_ready())
            process.start()
        alive += [process.wait_ready() for process in processes[len(alive):]]
        for slot in range(slots.pop()):
            order = range(len(processes)) if slot % 2 == 0 else reversed(range(len(processes)))
            for index in order:
                if alive[index]:
                    timing = _time_slot(processes[index], readers[index], slot, timeout)
                    alive[index] = timing is not None
                    timed[index] += [timing] if timing is not None else []
                    time.sleep(SETTLE_SECONDS)
        return [InterleavedResult(process.finish(), tuple(slots))
                for process, slots in zip(processes, timed)]
    finally:
        for process in processes:
            process.kill()


def _time_slot(process: TrialProcess, reader: JsonLinesReader, slot: int,
               timeout: float) -> SlotTiming | None:
    """Release slot ``slot`` of ``process`` and wait for its line (from ``reader``); None if
    the process ended instead (its record says why) or took longer than ``timeout`` (it is
    killed)."""
    (process.workdir / slot_go_file(slot)).touch()
    began = time.perf_counter()
    while True:
        lines = reader.new_entries()
        if lines:
            (line,) = lines  # one slot at a time
            return SlotTiming(line["runs"], line["median_s"], line["cv"])
        if process.process.poll() is not None:
            return None
        if time.perf_counter() - began > timeout:
            process.time_out(began)
            return None
        time.sleep(POLL_SECONDS)
