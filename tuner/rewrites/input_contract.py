"""What a tuned network's input must be, and serving any batch size through a network that
programs have fixed to one input shape."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tuner.errors import UsageError


class InputError(UsageError, ValueError):
    """A call whose input the tuned network was not built for (rank, dtype, image size): one
    line naming the tuned shape and what was given."""


@dataclass(frozen=True)
class InputContract:
    """The input a tuned network was built for: float32 of ``shape`` (batch, channels, height,
    width). Programs fix every dimension, so a call must match the rank, the dtype and every
    dimension but the first (else InputError). Its batch may be any positive size: ``serve``
    runs the network over chunks of the tuned batch, the last one padded with zeros, and
    concatenates the outputs' rows (each output's first dimension must be the batch)."""

    shape: tuple[int, ...]

    @property
    def batch(self) -> int:
        return self.shape[0]

    def _shown(self) -> str:
        return "x".join(map(str, self.shape))

    def check(self, x) -> int:
        """The batch size of ``x`` (a MindSpore Tensor), or InputError."""
        import mindspore as ms

        tuned = f"float32 N x {' x '.join(map(str, self.shape[1:]))} (tuned at {self._shown()})"
        if not isinstance(x, ms.Tensor):
            raise InputError(f"tuned network: expected a mindspore Tensor of {tuned}, "
                             f"got {type(x).__name__}")
        shape = tuple(x.shape)
        if x.dtype != ms.float32:
            raise InputError(f"tuned network: input dtype {x.dtype} is not float32; it takes "
                             f"{tuned}")
        if len(shape) != len(self.shape) or shape[1:] != self.shape[1:] or shape[0] < 1:
            raise InputError(f"tuned network: input shape {'x'.join(map(str, shape)) or '()'} "
                             f"is not {tuned}; tune again for another image size")
        return shape[0]

    def serve(self, x, run: Callable):
        """``run`` (the network at its tuned batch) over ``x`` of another batch size."""
        import mindspore as ms

        array = x.asnumpy()
        rows = array.shape[0]
        pieces: list[list[np.ndarray]] = []
        single = True
        for start in range(0, rows, self.batch):
            chunk = array[start:start + self.batch]
            if chunk.shape[0] < self.batch:
                padding = np.zeros((self.batch - chunk.shape[0],) + chunk.shape[1:], np.float32)
                chunk = np.concatenate([chunk, padding])
            output = run(ms.Tensor(np.ascontiguousarray(chunk)))
            single = not isinstance(output, (tuple, list))
            outputs = [output] if single else list(output)
            arrays = []
            for k, out in enumerate(outputs):
                value = out.asnumpy()
                if value.ndim == 0 or value.shape[0] != self.batch:
                    raise InputError(f"tuned network: cannot serve batch {rows} (tuned at "
                                     f"{self._shown()}): output {k} of shape {value.shape} "
                                     f"has no batch dimension")
                arrays.append(value[:min(self.batch, rows - start)])
            pieces.append(arrays)
        joined = [ms.Tensor(np.concatenate([piece[k] for piece in pieces]))
                  for k in range(len(pieces[0]))]
        return joined[0] if single else tuple(joined)
