"""Profiling a compiled network inside a trial process with MindSpore's profiler.

Only the trial process imports this (it needs MindSpore). ``capture`` runs warm-up inferences,
then ``runs`` unprofiled ones (timed), then ``runs`` profiled ones (each timed on its own, the
profiler's step bookkeeping outside the timing), and reads the profiler's per-operator table.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Callable, Iterable

from tuner.profiling.operator_times import OperatorTime, Profile

OP_DETAIL_FILE = "cpu_op_detail_info_0.csv"
TOP_LEVEL = "(top level)"
TRACE_FILE = "trace_view.json"


def _module_path(full_op_name: str) -> str:
    """``Default/network-ResNet/layer1-SequentialCell/0-Bottleneck/conv1-Conv2d/Conv2D-op3`` ->
    ``network.layer1.0.conv1`` (the cells_and_names path of the operator's cell)."""
    scopes = full_op_name.split("/")[1:-1]
    return ".".join(scope.rsplit("-", 1)[0] for scope in scopes)


class LayerNames:
    """Maps a tuned network's module paths back to the paths of the network as built.

    ``original``: the cells of the untuned network by ``cells_and_names`` path, taken before any
    rewrite (cells that a rewrite kept are found by identity). A custom kernel's cell carries the
    path of the convolution it replaced (``layer_path``) and what it runs (``kernel_name``,
    ``workload_key``). Any other new cell keeps its own path.
    """

    def __init__(self, original: Iterable[tuple[str, object]], tuned) -> None:
        self._original = {id(cell): (name, cell) for name, cell in original}
        self._cells = dict(tuned.cells_and_names())

    def _resolve(self, module_path: str) -> str:
        """MindSpore sometimes names the top-level wrapper's child by another attribute name
        (``net-TinyNet`` for ``network``): a first scope that is no child of the top cell is
        taken as its only child."""
        first, _, rest = module_path.partition(".")
        if not first or first in self._cells:
            return module_path
        children = [name for name in self._cells if name and "." not in name]
        if len(children) == 1:
            return ".".join(p for p in (children[0], rest) if p)
        return module_path

    def layer(self, module_path: str) -> str:
        """The layer path (``(top level)`` for operators of the network's own construct)."""
        return self._layer(self._resolve(module_path)) or TOP_LEVEL

    def _layer(self, module_path: str) -> str:
        path = module_path
        while True:
            cell = self._cells.get(path)
            if getattr(cell, "layer_path", None):
                return cell.layer_path
            if cell is not None and id(cell) in self._original:
                known = self._original[id(cell)][0]
                rest = module_path[len(path):].lstrip(".")
                return ".".join(p for p in (known, rest) if p)
            if not path:
                return module_path
            path = path.rpartition(".")[0]

    def custom_label(self, module_path: str) -> tuple[str, str] | None:
        """(kernel, workload key) of the custom kernel cell at ``module_path``, if it is one."""
        cell = self._cells.get(self._resolve(module_path))
        if getattr(cell, "workload_key", None):
            return cell.kernel_name, cell.workload_key
        return None


def read_operators(detail_csv: Path, names: LayerNames) -> tuple[OperatorTime, ...]:
    """The profiler's per-operator CSV, custom kernels named by kernel and workload."""
    operators = []
    with open(detail_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            module = _module_path(row["full_op_name"])
            op_type, kernel, workload = row["op_type"], "", ""
            custom = names.custom_label(module) if op_type == "Custom" else None
            if custom is not None:
                kernel, workload = custom
                op_type = f"Custom:{kernel}"
            operators.append(OperatorTime(op_type, names.layer(module), row["full_op_name"],
                                          int(row["op_occurrences"]),
                                          float(row["op_total_time(ms)"]), kernel, workload))
    return tuple(operators)


def _mean_ms(durations: list[float]) -> float:
    return 1000.0 * sum(durations) / len(durations)


def capture(run_once: Callable[[], None], runs: int, warmup_runs: int, out_dir: Path,
            activities: list, names: LayerNames, label: str, network, library) -> Profile:
    """Profile ``runs`` inferences of ``network`` after ``warmup_runs`` untimed and ``runs``
    unprofiled ones; its custom operators are broken down by its kernel ``library``'s profile
    hooks (tuner.kernels.base: on CPU, programs into their primitives)."""
    from mindspore.profiler import profile, schedule, tensorboard_trace_handler

    for _ in range(warmup_runs):
        run_once()
    unprofiled = []
    for _ in range(runs):
        started = time.perf_counter()
        run_once()
        unprofiled.append(time.perf_counter() - started)
    profiled, starts = [], []
    library.reset_timers(network)
    raw_dir = Path(out_dir).resolve()
    with profile(activities=activities, on_trace_ready=tensorboard_trace_handler(str(raw_dir)),
                 schedule=schedule(wait=0, warmup=0, active=runs, repeat=1)) as profiler:
        for _ in range(runs):
            started = time.perf_counter()
            run_once()
            profiled.append(time.perf_counter() - started)
            starts.append(started)
            profiler.step()
    details = sorted(raw_dir.glob(f"*/FRAMEWORK/{OP_DETAIL_FILE}"))
    traces = sorted(raw_dir.glob(f"*/ASCEND_PROFILER_OUTPUT/{TRACE_FILE}"))
    operators = read_operators(details[-1], names) if details else ()
    operators = library.expand_profile(operators, network)
    if not operators:  # a network that is one program called directly has no MindSpore operator
        raise RuntimeError(f"the profiler wrote no {OP_DETAIL_FILE} under {raw_dir}")
    trace = str(traces[-1]) if traces else ""
    if not details:
        trace = library.write_call_trace(raw_dir / "program_calls.json", network, starts,
                                         profiled)
    return Profile(label, runs, _mean_ms(profiled), _mean_ms(unprofiled), operators,
                   str(raw_dir), trace)
