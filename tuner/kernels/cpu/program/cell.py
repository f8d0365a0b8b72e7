"""The MindSpore cell that runs one program: ``ops.Custom(func_type="aot")`` on RunProgram."""
from __future__ import annotations

from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

from tuner.kernels.cpu.program.emit import EmittedProgram
from tuner.kernels.cpu.program.runtime import ENTRY_POINT


class ProgramCell(nn.Cell):
    """``y = program(x)``: the region's computation in one custom operator call.

    The constants (folded weights, biases, ...) are parameters named ``<name>.c<k>`` (graph mode
    needs unique names); ``layer_path``, ``kernel_name`` and ``workload_key`` name the cell's
    operator in profiles; ``steps`` describes what it runs (for explanations).
    """

    kernel_name = "program"

    def __init__(self, library: Path, program: EmittedProgram, name: str, steps: str = ""):
        super().__init__()
        self.layer_path, self.workload_key, self.steps = name, name, steps
        self.library = Path(library).resolve()
        self.spec_words = program.spec.encode()
        self.spec = Tensor(self.spec_words)
        self.constants = ParameterTuple(
            Parameter(Tensor(np.ascontiguousarray(c, np.float32)), name=f"{name}.c{k}",
                      requires_grad=False) for k, c in enumerate(program.constants))
        output_shape = tuple(program.output_shape)
        self.op = ops.Custom(f"{self.library}:{ENTRY_POINT}", out_shape=lambda *_: output_shape,
                             out_dtype=lambda *_: ms.float32, func_type="aot")

    def construct(self, x):
        return self.op(self.spec, x, *self.constants)
