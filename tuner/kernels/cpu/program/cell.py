"""The MindSpore cell that runs one program: ``ops.Custom(func_type="aot")`` on RunProgram."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from tuner.kernels.cpu.program.spec import ProgramImage
from tuner.kernels.cpu.program.program_runtime import ENTRY_POINT, DirectProgram, last_error


@dataclass(frozen=True)
class StepInfo:
    """What step k of a program computes: the network layer (module path), a description
    (``conv(+batchnorm) -> relu [1x64x56x56]``), and for a heavy op its kernel, workload and
    ``flops`` (multiply-adds x 2 of one call: of all its convolutions for a fused step; 0 for
    steps that are not heavy)."""

    layer: str
    description: str
    kernel: str = ""
    workload: str = ""
    flops: int = 0


class ProgramCell(nn.Cell):
    """``y = program(x)``: the region's computation in one custom operator call.

    The constants (folded weights, biases, ...) are one parameter, ``<name>.constants`` (graph
    mode needs unique names); ``layer_path``, ``kernel_name`` and ``workload_key`` name the
    cell's operator in profiles, ``steps`` what each step of the program computes. The call has
    a fixed number of arguments: MindSpore drops the cell's scope from an operator called with
    a starred argument list, and profiles need it.

    ``call_directly(x)`` runs the program from Python, outside any graph (what a top-level
    network that is one program does: tuner.rewrites.network); inside a graph the cell is its
    custom operator.
    """

    kernel_name = "program"

    def __init__(self, library: Path, program: ProgramImage, name: str,
                 steps: tuple[StepInfo, ...] = (), replaces: tuple[str, ...] = ()):
        super().__init__()
        self.layer_path, self.workload_key, self.steps = name, name, tuple(steps)
        self.replaces = tuple(replaces)  # the cells it stands for ("" alone: the network)
        self.library = Path(library).resolve()
        self.spec_words = np.asarray(program.words, dtype=np.int64)
        self.spec = Tensor(self.spec_words)
        self.constants = Parameter(Tensor(program.constants), name=f"{name}.constants",
                                   requires_grad=False)
        self.input_shape = tuple(program.input_shape)
        self.output_shape = output_shape = tuple(program.output_shape)
        self.op = ops.Custom(f"{self.library}:{ENTRY_POINT}", out_shape=lambda *_: output_shape,
                             out_dtype=lambda *_: ms.float32, func_type="aot")
        self._direct: DirectProgram | None = None
        self._direct_calls = threading.Lock()  # a DirectProgram's argument block is shared

    def call_directly(self, *args) -> Tensor | None:
        """``program(x)`` run by the runtime through ctypes, with MindSpore's calling
        convention but none of its graph executor: a new tensor, or None when the call is not
        one float32 tensor of the program's input shape (the caller then takes the graph).
        MindSpore's launch of a compiled graph around the custom operator costs 0.2-0.3 ms a
        call (docs/programs.md, "Threads, memory and the call around the program")."""
        if len(args) != 1:
            return None
        x = args[0]
        if (type(x) is not Tensor or tuple(x.shape) != self.input_shape  # noqa: E721
                or x.dtype != ms.float32):
            return None
        constants = self.constants.asnumpy()  # read each call: set_data may replace it
        output = np.empty(self.output_shape, np.float32)
        with self._direct_calls:
            if self._direct is None:
                self._direct = DirectProgram(self.library, self.spec_words,
                                             [np.zeros(self.input_shape, np.float32), constants],
                                             self.output_shape)
            status = self._direct.run(np.ascontiguousarray(x.asnumpy()), constants, output)
        if status != 0:
            raise RuntimeError(f"program {self.layer_path}: {last_error(self.library)}")
        return Tensor.from_numpy(output)

    def construct(self, x):
        return self.op(self.spec, x, self.constants)
