"""What one profiled process measured: its operators and its wall time, per inference.

A ``Profile`` is written by the trial process (``profile.json``) and read by the study; it is the
one representation of a profile, serialised only by ``to_dict``/``from_dict``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class OperatorTime:
    """One operator of the compiled graph, over the profiled inferences.

    - ``op_type``: MindSpore's operator type (``Conv2D``, ``BatchNorm``), or for a custom kernel
      ``Custom:<kernel>`` (``Custom:conv2d_dense``).
    - ``layer``: the network's module path that owns the operator (``layer3.1.conv2``), the
      tuner's wrapper cells removed; a custom kernel's is the convolution it replaced.
    - ``scope``: the profiler's full scope name of the operator (``Default/network-ResNet/...``).
    - ``calls``: how many times it ran over all profiled inferences; ``total_ms``: its summed
      duration as the profiler recorded it.
    - ``kernel``, ``workload``: for a custom kernel, which kernel runs which workload (key).
    - ``flops``: multiply-adds x 2 of one call where the tuner knows them (a program's heavy
      step: its workload's), else 0.
    """

    op_type: str
    layer: str
    scope: str
    calls: int
    total_ms: float
    kernel: str = ""
    workload: str = ""
    flops: int = 0

    @property
    def name(self) -> str:
        """What it runs, for people: ``conv2d_dense dense_n1_c64_h56_...`` or the op type."""
        return f"{self.kernel} {self.workload}" if self.kernel else self.op_type


@dataclass(frozen=True)
class Profile:
    """Operators and wall time of ``runs`` profiled inferences in one process.

    ``wall_ms``: mean wall time of one inference (the call and the copy of its output to the
    host) while the profiler recorded; ``unprofiled_ms``: the same mean over ``runs`` inferences
    just before, in the same process, with the profiler off. Operator time not covering the wall
    time is framework overhead (dispatch, launches, copies between operators). ``raw_dir`` is the
    profiler's own output; ``trace_file`` its Chrome trace (may be empty when none was written).
    """

    label: str
    runs: int
    wall_ms: float
    unprofiled_ms: float
    operators: tuple[OperatorTime, ...] = field(default_factory=tuple)
    raw_dir: str = ""
    trace_file: str = ""

    @property
    def operator_ms(self) -> float:
        """Summed operator time per inference."""
        return sum(o.total_ms for o in self.operators) / self.runs

    @property
    def overhead_ms(self) -> float:
        """Wall time per inference that no operator accounts for (never below 0)."""
        return max(self.wall_ms - self.operator_ms, 0.0)

    @property
    def overhead_share(self) -> float:
        return self.overhead_ms / self.wall_ms if self.wall_ms > 0 else 0.0

    @property
    def profiler_slowdown(self) -> float:
        """Profiled over unprofiled wall time per inference (1.0 = the profiler cost nothing)."""
        return self.wall_ms / self.unprofiled_ms if self.unprofiled_ms > 0 else float("nan")

    def per_inference(self, key: str) -> dict[str, tuple[float, float]]:
        """``op_type`` or ``layer`` -> (calls per inference, ms per inference)."""
        totals: dict[str, list[float]] = {}
        for op in self.operators:
            entry = totals.setdefault(getattr(op, key), [0.0, 0.0])
            entry[0] += op.calls
            entry[1] += op.total_ms
        return {k: (calls / self.runs, ms / self.runs) for k, (calls, ms) in totals.items()}

    def flops_per_inference(self, key: str | None = None) -> dict[str, float]:
        """``op_type`` or ``layer`` -> floating-point operations per inference of its operators
        whose ``flops`` are known (only keys that have some); ``key`` None: one entry, ""."""
        totals: dict[str, float] = {}
        for op in self.operators:
            if op.flops:
                name = getattr(op, key) if key else ""
                totals[name] = totals.get(name, 0.0) + op.flops * op.calls / self.runs
        return totals

    def names_by_layer(self) -> dict[str, list[str]]:
        names: dict[str, list[str]] = {}
        for op in self.operators:
            names.setdefault(op.layer, []).append(op.name)
        return names

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["operators"] = [asdict(o) for o in self.operators]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Profile":
        return cls(**{**data, "operators": tuple(OperatorTime(**o) for o in data["operators"])})
