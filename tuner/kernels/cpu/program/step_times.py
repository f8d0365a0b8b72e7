"""The time a trial's programs spend in each of their steps, read from the program runtime
(``ProgramTimings``): per workload after a timed run, and, in a profile, in place of each
program's row. The CPU kernel library's timing hooks (tuner.kernels.base) are these.

A program is one operator to MindSpore's profiler; its runtime times each of its primitives,
and these times replace the program's row in a profile. A program called from Python without a
graph (a network that is one program) is no operator to the profiler: its row is the runtime's
own count and time of its calls.

Each primitive becomes a row of the layer its step computes: ``op_type`` is the step's kind
(``program:conv``, ``program:reorder`` for a layout conversion made for that step), ``kernel``
the implementation (``onednn:brg_conv_fwd:avx512_core`` or a hand-written kernel's name) and
``workload`` the heavy op's workload. What the program's operator took beyond its primitives
(binding, the arena, the calls' own cost) is a row ``program:overhead`` of the program's layer
(kernel ``program``, workload the program's name: it names the program's operator in traces).
"""
from __future__ import annotations

import json
from pathlib import Path

from tuner.files import atomic_write_text
from tuner.kernels.cpu.program.program_runtime import timings
from tuner.profiling.operator_times import OperatorTime

PREFIX = "program:"


def program_cells(network) -> dict[str, object]:
    """Layer path -> program cell, for the programs of ``network``."""
    return {cell.layer_path: cell for _, cell in network.cells_and_names()
            if getattr(cell, "kernel_name", "") == "program"}


def _step_info(cell, action):
    """What the program step an action belongs to computes (tuner...cell.StepInfo), or None."""
    return cell.steps[action.step] if action.step < len(cell.steps) else None


def reset(network) -> None:
    for cell in program_cells(network).values():
        timings(cell.library, cell.spec_words, reset=True)


def expand(operators: tuple[OperatorTime, ...], network) -> tuple[OperatorTime, ...]:
    """``operators`` with each program's row replaced by the rows of its primitives (their
    times scaled to the profiler's time of the program's operator, of which they are a part)."""
    cells = program_cells(network)
    seen = {operator.layer for operator in operators if operator.kernel == "program"}
    called_directly = [_direct_calls(cell) for path, cell in cells.items() if path not in seen]
    expanded: list[OperatorTime] = []
    for operator in (*operators, *filter(None, called_directly)):
        cell = cells.get(operator.layer) if operator.kernel == "program" else None
        times = timings(cell.library, cell.spec_words) if cell is not None else None
        if times is None or not times.calls:
            expanded.append(operator)
            continue
        scale = operator.calls / times.calls  # the program ran outside the profiler too
        spent = 0.0
        for action in times.actions:
            info = _step_info(cell, action)
            kind = "reorder" if action.label == "reorder" else (
                info.description.split(" ", 1)[0].split("(", 1)[0] if info else "step")
            reorder = action.label == "reorder"
            implementation = (info.kernel if info and info.kernel not in ("", "onednn")
                              and not reorder else f"onednn:{action.implementation}")
            total_ms = action.total_us / 1000.0 * scale
            spent += total_ms
            expanded.append(OperatorTime(
                f"{PREFIX}{kind}", (info.layer if info else "") or operator.layer,
                f"{operator.scope}/step{action.step}", int(round(action.calls * scale)),
                total_ms, implementation, "" if reorder or not info else info.workload,
                0 if reorder or not info else info.flops))
        expanded.append(OperatorTime(f"{PREFIX}overhead", operator.layer, operator.scope,
                                     operator.calls, max(operator.total_ms - spent, 0.0),
                                     "program", operator.layer))
    return tuple(expanded)


def _direct_calls(cell) -> OperatorTime | None:
    """The row of a program that ran without MindSpore's graph (ProgramCell.call_directly), so
    that its profiler saw no operator: the program's own count and time of its calls."""
    times = timings(cell.library, cell.spec_words)
    if times is None or not times.calls:
        return None
    return OperatorTime("Custom:program", cell.layer_path, cell.layer_path, times.calls,
                        times.total_us / 1000.0, "program", cell.layer_path)


def write_call_trace(path: Path, network, starts: list[float], durations: list[float]) -> str:
    """A Chrome trace of the inferences whose programs ran without MindSpore's graph (the
    profiler traced nothing): a span a call, the inference's wall time as timed from Python
    (``starts``, ``durations``: seconds), named after the program; ``path``, or "" if no
    program ran so."""
    called = [path for path, cell in program_cells(network).items() if _direct_calls(cell)]
    if not called:
        return ""
    events = [{"ph": "X", "name": f"program {called[0]}", "pid": 1, "tid": 1, "ts": start * 1e6,
               "dur": duration * 1e6, "args": {"timed": "the whole call, from Python"}}
              for start, duration in zip(starts, durations)]
    atomic_write_text(path, json.dumps({"traceEvents": events}))
    return str(path)


def workload_times(network) -> dict[str, float]:
    """Workload key -> milliseconds per program call spent in the primitives of its layers
    (and in the layout conversions made for them) since the last ``reset``; over all the
    programs of ``network`` (empty if none has run)."""
    found: dict[str, float] = {}
    for cell in program_cells(network).values():
        times = timings(cell.library, cell.spec_words)
        if times is None or not times.calls:
            continue
        for action in times.actions:
            info = _step_info(cell, action)
            if info is not None and info.workload:
                found[info.workload] = (found.get(info.workload, 0.0)
                                        + action.total_us / 1000.0 / times.calls)
    return found
