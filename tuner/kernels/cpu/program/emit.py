"""A fused kernel graph -> the program spec and the constants it reads.

The custom operator's parameters are ``(spec, x, constants..., out)``: the region input is
``params[1]``, constant k is ``params[2 + k]`` and the output the last. Each convolution and
matrix product takes the implementation rank its workload's choice names (``impl_for``).
"""
from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tuner.kernels.cpu.program import spec as s
from tuner.kernels.cpu.program.kernel_graph import Act, Const, KernelGraph, KOp, Post


_INSTANCES = itertools.count(1)


@dataclass(frozen=True)
class EmittedProgram:
    spec: s.ProgramSpec
    constants: tuple[np.ndarray, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


class _Values:
    def __init__(self, kg: KernelGraph):
        self.kg = kg
        self.decls: list[s.ValueDecl] = []
        self.ids: dict = {}
        self.constants: list[np.ndarray] = []

    def act(self, act: Act, role: s.Role = s.Role.TEMP, index: int = -1) -> int:
        if act not in self.ids:
            self.ids[act] = len(self.decls)
            self.decls.append(s.ValueDecl(role, index, self.kg.shapes[act.id]))
        return self.ids[act]

    def const(self, const: Const) -> int:
        if const not in self.ids:
            self.ids[const] = len(self.decls)
            array = self.kg.consts[const.id]
            self.decls.append(s.ValueDecl(s.Role.CONST, 2 + len(self.constants),
                                          tuple(array.shape) or (1,)))
            self.constants.append(array.reshape(tuple(array.shape) or (1,)))
        return self.ids[const]

    def ref(self, ref) -> int:
        return self.act(ref) if isinstance(ref, Act) else self.const(ref)


def _posts(values: _Values, posts: list[Post]) -> tuple[s.PostOp, ...]:
    return tuple(s.PostOp(p.alg, p.alpha, p.beta,
                          None if p.operand is None else values.ref(p.operand)) for p in posts)


def _step(values: _Values, op: KOp, impl: int) -> s.Step:
    a = op.attrs
    ins = [values.ref(r) for r in op.inputs]
    out = values.act(op.out)
    posts = _posts(values, op.posts)
    bias = None if a.get("bias") is None else values.ref(a["bias"])
    if op.kind == "conv":
        return s.Conv(ins[0], ins[1], bias, out, a["groups"], tuple(a["stride"]),
                      tuple(a["padding"]), tuple(a["dilation"]), impl, posts)
    if op.kind == "matmul":
        return s.MatMul(ins[0], ins[1], bias, out, a["transpose_a"], a["transpose_b"], posts)
    if op.kind == "pool":
        return s.Pool(ins[0], out, a["alg"], tuple(a["kernel"]), tuple(a["stride"]),
                      tuple(a["padding"]), posts)
    if op.kind == "eltwise":
        return s.Eltwise(ins[0], out, a["alg"], a["alpha"], a["beta"])
    if op.kind == "binary":
        return s.Binary(ins[0], ins[1], out, a["alg"], posts)
    if op.kind == "concat":
        return s.Concat(tuple(ins), out, a["axis"])
    if op.kind == "reduce":
        return s.Reduce(ins[0], out, a["alg"])
    if op.kind == "layernorm":
        return s.LayerNorm(ins[0], ins[1], ins[2], out, a["epsilon"])
    if op.kind == "softmax":
        return s.Softmax(ins[0], out, a["axis"])
    if op.kind == "transpose":
        return s.Transpose(ins[0], out, tuple(a["perm"]))
    if op.kind == "reshape":
        return s.Reshape(ins[0], out)
    if op.kind == "slice":
        return s.Slice(ins[0], out, tuple(a["offsets"]))
    raise ValueError(f"no program step for a {op.kind!r} op")


def emit(kg: KernelGraph, layout: s.Layout, impl_for: Callable[[KOp], int],
         uid_seed: str) -> EmittedProgram:
    """The spec of a fused kernel graph; its uid (from ``uid_seed``, e.g. the layer path, and a
    counter of the process) makes each program cell's spec unique."""
    values = _Values(kg)
    values.act(kg.input, s.Role.INPUT, 1)
    steps = [_step(values, op, impl_for(op)) for op in kg.ops]
    output = values.ids.get(kg.output)
    if output is None or kg.output == kg.input:
        raise ValueError("the program computes nothing")
    output_index = 2 + len(values.constants)
    decl = values.decls[output]
    values.decls[output] = s.ValueDecl(s.Role.OUTPUT, output_index, decl.dims)
    uid = zlib.crc32(uid_seed.encode()) << 24 | (next(_INSTANCES) & 0xFFFFFF)
    spec = s.ProgramSpec(uid, layout, tuple(values.decls), tuple(steps))
    return EmittedProgram(spec, tuple(values.constants), kg.shapes[kg.input.id],
                          kg.shapes[kg.output.id])
