"""A hand-written kernel as its own MindSpore cell (verification, benchmarks), and the builtin
operators with the same call signature ``unit(x, residual=None)``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from tuner.kernels.cpu.geometry import geometry_array
from tuner.kernels.cpu.packing import WeightLayout, pack_weight

_ACTIVATION_CELLS = {"none": nn.Identity, "relu": nn.ReLU, "relu6": nn.ReLU6}


def _output_size(size: int, kernel: int, stride: int, before: int, after: int) -> int:
    return (size + before + after - kernel) // stride + 1


class CustomConv2d(nn.Cell):
    """act(conv(x) + bias [+ residual]) by one AOT kernel call (``entry_point`` of
    ``library``); float32, NCHW.

    ``weight`` (OC, C/groups, KH, KW) and ``bias`` (OC) are packed here, once, as ``layout``
    (the built variant's kernel and tiling) says. ``name`` prefixes the parameter names (graph
    mode needs unique names); ``workload`` is the key of the workload it runs.
    """

    def __init__(self, library: Path, layout: WeightLayout, entry_point: str, weight: np.ndarray,
                 bias: np.ndarray, stride: tuple[int, int], padding: tuple[int, int, int, int],
                 activation: str = "none", name: str = "custom_conv", workload: str = ""):
        super().__init__()
        self.layer_path, self.workload_key, self.kernel_name = name, workload, layout.kernel
        out_channels, _, kh, kw = weight.shape
        self.weight = Parameter(Tensor(pack_weight(layout, weight)), name=f"{name}.packed_weight",
                                requires_grad=False)
        self.bias = Parameter(Tensor(np.asarray(bias, dtype=np.float32)), name=f"{name}.bias",
                              requires_grad=False)
        self.geometry = Tensor(geometry_array((kh, kw), stride, padding, activation))
        top, bottom, left, right = padding

        def out_shape(x_shape, *_):
            return (x_shape[0], out_channels, _output_size(x_shape[2], kh, stride[0], top, bottom),
                    _output_size(x_shape[3], kw, stride[1], left, right))

        def out_dtype(x_dtype, *_):
            return x_dtype

        self.library, self.entry_point = Path(library).resolve(), entry_point
        func = f"{self.library}:{entry_point}"
        self.conv = ops.Custom(func, out_shape=out_shape, out_dtype=out_dtype, func_type="aot")
        self.conv_residual = ops.Custom(func, out_shape=out_shape, out_dtype=out_dtype,
                                        func_type="aot")

    def construct(self, x, residual=None):
        if residual is None:
            return self.conv(x, self.weight, self.bias, self.geometry)
        return self.conv_residual(x, self.weight, self.bias, self.geometry, residual)


class BuiltinConvUnit(nn.Cell):
    """act(bn(conv(x)) [+ residual]) with MindSpore's own cells."""

    def __init__(self, conv: nn.Cell, bn: nn.Cell | None, activation: str):
        super().__init__()
        self.conv = conv
        self.bn = bn if bn is not None else nn.Identity()
        self.act = _ACTIVATION_CELLS[activation]()

    def construct(self, x, residual=None):
        y = self.bn(self.conv(x))
        if residual is not None:
            y = y + residual
        return self.act(y)
