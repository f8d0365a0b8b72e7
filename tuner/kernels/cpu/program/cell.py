"""The MindSpore cell that runs one program: ``ops.Custom(func_type="aot")`` on RunProgram."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from tuner.kernels.cpu.program.emit import EmittedProgram
from tuner.kernels.cpu.program.runtime import ENTRY_POINT


@dataclass(frozen=True)
class StepInfo:
    """What step k of a program computes: the network layer (module path), a description
    (``conv(+batchnorm) -> relu [1x64x56x56]``), and for a heavy op its kernel and workload."""

    layer: str
    description: str
    kernel: str = ""
    workload: str = ""


class ProgramCell(nn.Cell):
    """``y = program(x)``: the region's computation in one custom operator call.

    The constants (folded weights, biases, ...) are one parameter, ``<name>.constants`` (graph
    mode needs unique names); ``layer_path``, ``kernel_name`` and ``workload_key`` name the
    cell's operator in profiles, ``steps`` what each step of the program computes. The call has
    a fixed number of arguments: MindSpore drops the cell's scope from an operator called with
    a starred argument list, and profiles need it.
    """

    kernel_name = "program"

    def __init__(self, library: Path, program: EmittedProgram, name: str,
                 steps: tuple[StepInfo, ...] = ()):
        super().__init__()
        self.layer_path, self.workload_key, self.steps = name, name, tuple(steps)
        self.library = Path(library).resolve()
        self.spec_words = program.spec.encode()
        self.spec = Tensor(self.spec_words)
        self.constants = Parameter(Tensor(program.constants), name=f"{name}.constants",
                                   requires_grad=False)
        self.input_shape = tuple(program.input_shape)
        output_shape = tuple(program.output_shape)
        self.op = ops.Custom(f"{self.library}:{ENTRY_POINT}", out_shape=lambda *_: output_shape,
                             out_dtype=lambda *_: ms.float32, func_type="aot")

    def construct(self, x):
        return self.op(self.spec, x, self.constants)
