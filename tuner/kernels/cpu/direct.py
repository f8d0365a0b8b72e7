"""Calling a built kernel directly through ctypes, with the same AOT calling convention as
MindSpore's ops.Custom, to time the kernel alone (no graph launch overhead)."""
from __future__ import annotations

import ctypes

import numpy as np

from tuner.kernels.cpu.cells import CustomConv2d

_DTYPE_NAMES = {np.dtype(np.float32): b"float32", np.dtype(np.int32): b"int32"}


class DirectKernelCall:
    """``call()`` runs the kernel of ``cell`` on ``inputs`` into a preallocated output.

    ``inputs``: x [, residual] as numpy float32 arrays; ``output_shape`` the NCHW output shape.
    ``call()`` returns the kernel's status (0 = success); ``output`` holds the result.
    """

    def __init__(self, cell: CustomConv2d, inputs: list[np.ndarray], output_shape: tuple[int, ...]):
        self._library = ctypes.CDLL(str(cell.library))
        self._function = getattr(self._library, cell.entry_point)
        x, *residual = [np.ascontiguousarray(a, dtype=np.float32) for a in inputs]
        self.output = np.empty(output_shape, dtype=np.float32)
        arrays = [x, cell.weight.asnumpy(), cell.bias.asnumpy(), cell.geometry.asnumpy(),
                  *residual, self.output]
        self._arrays = arrays  # keep alive
        count = len(arrays)
        self._shapes = [(ctypes.c_int64 * max(1, a.ndim))(*a.shape) for a in arrays]
        self._args = (
            count,
            (ctypes.c_void_p * count)(*[a.ctypes.data for a in arrays]),
            (ctypes.c_int * count)(*[a.ndim for a in arrays]),
            (ctypes.POINTER(ctypes.c_int64) * count)(
                *[ctypes.cast(s, ctypes.POINTER(ctypes.c_int64)) for s in self._shapes]),
            (ctypes.c_char_p * count)(*[_DTYPE_NAMES[a.dtype] for a in arrays]),
            None,
            None,
        )

    def __call__(self) -> int:
        return self._function(*self._args)
