"""From MindSpore's nn.Conv2d settings to explicit padding, workloads and the int32 geometry
tensor the C++ kernels read (layout: GeometryIndex in kernels/cpu/conv_common.h)."""
from __future__ import annotations

import math

import numpy as np
from mindspore import nn

from tuner.kernels.workload import ConvWorkload

ACTIVATION_CODES = {"none": 0, "relu": 1, "relu6": 2}


def pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    return value if len(value) == 2 else (value[-2], value[-1])


def explicit_padding(conv: nn.Conv2d, height: int, width: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) equivalent to the conv's pad_mode for this input size."""
    mode = conv.pad_mode.lower()
    if mode == "pad":
        padding = conv.padding
        if isinstance(padding, int):
            return (padding,) * 4
        padding = tuple(int(p) for p in padding)
        return padding if len(padding) == 4 else (padding[0], padding[0], padding[1], padding[1])
    if mode == "valid":
        return (0, 0, 0, 0)
    (kh, kw), (sh, sw) = pair(conv.kernel_size), pair(conv.stride)
    (dh, dw) = pair(conv.dilation)
    result = []
    for size, k, s, d in ((height, kh, sh, dh), (width, kw, sw, dw)):
        out = math.ceil(size / s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        result.extend((total // 2, total - total // 2))
    return tuple(result)


def conv_kind(conv: nn.Conv2d) -> str | None:
    """'dense', 'depthwise', or None for a convolution the kernels do not support."""
    if pair(conv.dilation) != (1, 1) or getattr(conv, "data_format", "NCHW") != "NCHW":
        return None
    if str(conv.weight.dtype) not in ("Float32", "float32"):
        return None
    if conv.group == 1:
        return "dense"
    if conv.group == conv.in_channels == conv.out_channels:
        return "depthwise"
    return None


def conv_workload(conv: nn.Conv2d, input_shape: tuple[int, ...], activation: str = "none",
                  has_residual: bool = False) -> ConvWorkload | None:
    """The workload of ``conv`` applied to an NCHW input, or None if unsupported."""
    kind = conv_kind(conv)
    if kind is None or len(input_shape) != 4:
        return None
    batch, channels, height, width = (int(v) for v in input_shape)
    workload = ConvWorkload(
        kind=kind, batch=batch, in_channels=channels, out_channels=conv.out_channels,
        height=height, width=width, kernel=pair(conv.kernel_size), stride=pair(conv.stride),
        padding=explicit_padding(conv, height, width), has_residual=has_residual,
        activation=activation,
    )
    return workload if workload.supported_by_custom else None


def geometry_array(kernel, stride, padding, activation: str) -> np.ndarray:
    """The int32 vector [KH, KW, SH, SW, PT, PB, PL, PR, ACT]."""
    return np.array([*kernel, *stride, *padding, ACTIVATION_CODES[activation]], dtype=np.int32)
