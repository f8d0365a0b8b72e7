"""Finding every convolution's input shape without running any convolution.

Each nn.Conv2d is temporarily replaced by a stub whose only op is a ``pyfunc`` Custom op: its
shape-inference callback records the input shape and returns the conv's output shape, its
body returns zeros. A fresh wrapper around the network is run once in graph mode (PyNative
is not usable here: its pyboost ops fail with numpy 2), then the network is restored.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from tuner.kernels.cpu.geometry import pair, explicit_padding


def set_child(parent: nn.Cell, name: str, child: nn.Cell) -> None:
    """Replace ``parent``'s child ``name`` (a SequentialCell's key is its index as a string).

    SequentialCell.__setitem__ renames the new child's parameters from a prefix it guesses
    from its other children's names, which fails once one child is custom; its ``_cells``
    dict and ``cell_list`` are therefore updated directly (parameter names are kept).
    """
    if isinstance(parent, nn.SequentialCell):
        parent._cells[name] = child  # pylint: disable=protected-access
        parent.cell_list = list(parent._cells.values())  # pylint: disable=protected-access
    else:
        setattr(parent, name, child)


def conv_output_shape(conv: nn.Conv2d, input_shape) -> tuple[int, int, int, int]:
    n, _, h, w = (int(v) for v in input_shape)
    top, bottom, left, right = explicit_padding(conv, h, w)
    (kh, kw), (sh, sw), (dh, dw) = pair(conv.kernel_size), pair(conv.stride), pair(conv.dilation)
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    return (n, conv.out_channels, oh, ow)


class _ShapeProbe(nn.Cell):
    def __init__(self, conv: nn.Conv2d, shapes: dict[int, tuple[int, ...]]):
        super().__init__()

        def infer(x_shape):
            shapes[id(conv)] = tuple(int(v) for v in x_shape)
            return conv_output_shape(conv, x_shape)

        def zeros(x):
            return np.zeros(conv_output_shape(conv, x.shape), dtype=np.float32)

        self.op = ops.Custom(zeros, out_shape=infer, out_dtype=lambda t: t, func_type="pyfunc")

    def construct(self, x):
        return self.op(x)


class _Wrapper(nn.Cell):
    def __init__(self, net: nn.Cell):
        super().__init__()
        self.net = net

    def construct(self, x):
        return self.net(x)


def conv_input_shapes(net: nn.Cell, input_shape: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
    """id(conv) -> NCHW input shape for every nn.Conv2d reached by ``net(zeros(input_shape))``.

    Probing runs at batch 1 and the batch of ``input_shape`` is substituted (conv shapes do not
    depend on the batch). Convs never called are absent. The network is restored on return.
    """
    shapes: dict[int, tuple[int, ...]] = {}
    replaced = []
    for _, parent in list(net.cells_and_names()):
        for name, child in list(parent.name_cells().items()):
            if isinstance(child, nn.Conv2d):
                replaced.append((parent, name, child))
    previous_mode = ms.get_context("mode")
    try:
        for parent, name, conv in replaced:
            set_child(parent, name, _ShapeProbe(conv, shapes))
        ms.set_context(mode=ms.GRAPH_MODE)
        _Wrapper(net)(Tensor(np.zeros((1, *input_shape[1:]), dtype=np.float32)))
    finally:
        ms.set_context(mode=previous_mode)
        for parent, name, conv in replaced:
            set_child(parent, name, conv)
    batch = int(input_shape[0])
    return {key: (batch, *shape[1:]) for key, shape in shapes.items()}
