"""The convolution problems the custom kernels solve, as frozen, hashable records.

The ``key`` names the tiling problem only (kind, batch, shapes, kernel, stride, padding): the
epilogue (activation, residual add) is a run-time argument of the same compiled variant, so
layers that differ only in their epilogue share a key and a tuning choice.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

KINDS = ("dense", "depthwise")
ACTIVATIONS = ("none", "relu", "relu6")
MAX_DEPTHWISE_TAPS = 49  # MAX_TAPS of kernels/cpu/conv2d_depthwise.cpp
KERNEL_NAMES = {"dense": "conv2d_dense", "depthwise": "conv2d_depthwise"}
WINOGRAD = "conv2d_winograd"  # dense 3x3 stride-1 convolutions only (any padding)


_KEY = re.compile(r"([a-z]+)_n(\d+)_c(\d+)_h(\d+)_w(\d+)_o(\d+)_k(\d+)x(\d+)"
                  r"_s(\d+(?:x\d+)?)_p(\d+(?:_\d+_\d+_\d+)?)")


@dataclass(frozen=True)
class ConvWorkload:
    kind: str
    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    has_residual: bool = False
    activation: str = "none"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.kind == "depthwise" and self.in_channels != self.out_channels:
            raise ValueError("a depthwise workload has out_channels == in_channels")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ConvWorkload":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @property
    def kernel_name(self) -> str:
        return KERNEL_NAMES[self.kind]

    @property
    def kernel_names(self) -> tuple[str, ...]:
        """Every kernel that can run this workload, its default one (``kernel_name``) first."""
        if self.kind == "dense" and self.kernel == (3, 3) and self.stride == (1, 1):
            return (self.kernel_name, WINOGRAD)
        return (self.kernel_name,)

    @classmethod
    def from_key(cls, key: str) -> "ConvWorkload":
        """The workload (without its epilogue) a ``key`` names; ValueError if malformed."""
        match = _KEY.fullmatch(key)
        if match is None:
            raise ValueError(f"not a workload key: {key!r}")
        kind, n, c, h, w, o, kh, kw, stride, padding = match.groups()

        def ints(text: str, count: int) -> tuple[int, ...]:
            values = tuple(int(v) for v in text.split("_" if count == 4 else "x"))
            return values * count if len(values) == 1 else values

        return cls(kind, int(n), int(c), int(o), int(h), int(w), (int(kh), int(kw)),
                   ints(stride, 2), ints(padding, 4))

    @property
    def out_height(self) -> int:
        top, bottom, _, _ = self.padding
        return (self.height + top + bottom - self.kernel[0]) // self.stride[0] + 1

    @property
    def out_width(self) -> int:
        _, _, left, right = self.padding
        return (self.width + left + right - self.kernel[1]) // self.stride[1] + 1

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.in_channels, self.height, self.width)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.out_channels, self.out_height, self.out_width)

    @property
    def flops(self) -> int:
        """Multiply-adds x 2 of the convolution (the epilogue is not counted)."""
        reduction = self.kernel[0] * self.kernel[1] * (1 if self.kind == "depthwise" else self.in_channels)
        return 2 * self.batch * self.out_channels * self.out_height * self.out_width * reduction

    @property
    def supported_by_custom(self) -> bool:
        if self.out_height < 1 or self.out_width < 1 or min(self.padding) < 0:
            return False
        if self.kind == "depthwise":
            return self.kernel[0] * self.kernel[1] <= MAX_DEPTHWISE_TAPS
        return True

    @property
    def key(self) -> str:
        """e.g. ``dense_n16_c64_h56_w56_o256_k1x1_s1_p0`` (epilogue not included)."""
        kh, kw = self.kernel
        sh, sw = self.stride
        stride = f"{sh}" if sh == sw else f"{sh}x{sw}"
        padding = f"{self.padding[0]}" if len(set(self.padding)) == 1 else "_".join(map(str, self.padding))
        return (f"{self.kind}_n{self.batch}_c{self.in_channels}_h{self.height}_w{self.width}"
                f"_o{self.out_channels}_k{kh}x{kw}_s{stride}_p{padding}")
