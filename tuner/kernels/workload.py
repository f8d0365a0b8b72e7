"""The problems custom kernels solve (workloads), as frozen, typed, serialisable records.

One representation from planning to the search space, the tuning records and the export: a
workload is built from what the network computes (the program planner's convolutions and
matrix products), stored as ``to_dict()`` in the study's model information and read back with
``workload_from_dict``; its ``key`` names it in Optuna parameters, MLflow and exports and is
never parsed. The key names the tiling problem only (shapes, strides, groups): the fused
epilogue is a run-time argument, so layers that differ only in it share a key and a choice.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Union

ACTIVATIONS = ("none", "relu", "relu6")


def _tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True)
class ConvWorkload:
    """A 2-D convolution, float32 NCHW; ``padding`` is (top, bottom, left, right).

    ``has_residual``/``activation`` are the epilogue of the first layer with this workload
    (the one a hand-written kernel is verified with)."""

    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    has_residual: bool = False
    activation: str = "none"

    op = "conv"

    def __post_init__(self) -> None:
        for name in ("kernel", "stride", "padding", "dilation"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.groups < 1 or self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{self.groups} groups do not divide {self.in_channels} input and "
                             f"{self.out_channels} output channels")

    @property
    def kind(self) -> str:
        """``dense`` (one group), ``depthwise`` (a group per input channel, any multiplier) or
        ``grouped``."""
        if self.groups == 1:
            return "dense"
        return "depthwise" if self.groups == self.in_channels else "grouped"

    @property
    def out_height(self) -> int:
        top, bottom, _, _ = self.padding
        span = self.dilation[0] * (self.kernel[0] - 1) + 1
        return (self.height + top + bottom - span) // self.stride[0] + 1

    @property
    def out_width(self) -> int:
        _, _, left, right = self.padding
        span = self.dilation[1] * (self.kernel[1] - 1) + 1
        return (self.width + left + right - span) // self.stride[1] + 1

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.in_channels, self.height, self.width)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.out_channels, self.out_height, self.out_width)

    @property
    def flops(self) -> int:
        """Multiply-adds x 2 of the convolution (the epilogue is not counted)."""
        reduction = self.kernel[0] * self.kernel[1] * (self.in_channels // self.groups)
        return 2 * self.batch * self.out_channels * self.out_height * self.out_width * reduction

    def _key(self, batch: str) -> str:
        kh, kw = self.kernel
        sh, sw = self.stride
        stride = f"{sh}" if sh == sw else f"{sh}x{sw}"
        padding = (f"{self.padding[0]}" if len(set(self.padding)) == 1
                   else "_".join(map(str, self.padding)))
        extra = "" if self.dilation == (1, 1) else f"_d{self.dilation[0]}x{self.dilation[1]}"
        extra += f"_g{self.groups}" if self.kind == "grouped" else ""
        return (f"{self.kind}{batch}_c{self.in_channels}_h{self.height}_w{self.width}"
                f"_o{self.out_channels}_k{kh}x{kw}_s{stride}_p{padding}{extra}")

    @property
    def key(self) -> str:
        """e.g. ``dense_n16_c64_h56_w56_o256_k1x1_s1_p0`` (epilogue not included)."""
        return self._key(f"_n{self.batch}")

    @property
    def batchless_key(self) -> str:
        """The key without the batch size: the same convolution at every batch."""
        return self._key("")

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class MatMulWorkload:
    """``(batch..., m, k) @ (batch..., k, n)``, float32; ``constant_weights``: the right operand
    is a parameter (a dense layer) rather than an activation (attention)."""

    batch: tuple[int, ...]
    m: int
    k: int
    n: int
    constant_weights: bool = True

    op = "matmul"

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch", tuple(int(v) for v in self.batch))

    @property
    def flops(self) -> int:
        count = 1
        for dim in self.batch:
            count *= dim
        return 2 * count * self.m * self.k * self.n

    def _key(self, batch: str) -> str:
        weights = "" if self.constant_weights else "_act"
        return f"matmul{batch}_m{self.m}_k{self.k}_n{self.n}{weights}"

    @property
    def key(self) -> str:
        return self._key("_b" + "x".join(map(str, self.batch)) if self.batch else "")

    @property
    def batchless_key(self) -> str:
        return self._key("")

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, **dataclasses.asdict(self)}


Workload = Union[ConvWorkload, MatMulWorkload]
_TYPES = {"conv": ConvWorkload, "matmul": MatMulWorkload}


def workload_from_dict(data: dict[str, Any]) -> Workload:
    """The workload ``to_dict`` wrote; ValueError if malformed."""
    if not isinstance(data, dict) or data.get("op") not in _TYPES:
        raise ValueError(f"not a workload: {data!r}")
    cls = _TYPES[data["op"]]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names - {"op"}
    if unknown:
        raise ValueError(f"{data['op']} workload: unknown field {sorted(unknown)[0]!r}")
    try:
        return cls(**{k: _tuple(v) for k, v in data.items() if k != "op"})
    except TypeError as error:
        raise ValueError(f"{data['op']} workload: {error}") from None


@dataclass(frozen=True)
class WorkloadGroup:
    """A workload, the network layers (module paths) that share it, and the kernels that can
    run all of them, the default one first."""

    workload: Workload
    layers: tuple[str, ...]
    kernels: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.workload.key

    @property
    def kernel(self) -> str:
        return self.kernels[0]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "workload": self.workload.to_dict(), "layers": list(self.layers),
                "kernels": list(self.kernels), "flops": self.workload.flops}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WorkloadGroup":
        try:
            return cls(workload_from_dict(data["workload"]), tuple(data["layers"]),
                       tuple(data["kernels"]))
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a workload group: {error}") from None
