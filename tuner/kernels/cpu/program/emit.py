"""A fused kernel graph -> the program spec and the constants it reads.

The custom operator's parameters are ``(spec, x, constants, out)`` (tuner.kernels.cpu.program.
spec): the region input, all its constants packed in one array, the output. ``choice_for(op, kg)``
says how each convolution and matrix product runs: oneDNN's implementation of that rank, or a
hand-written kernel (an ``External`` step, its weights packed for that variant), or a kernel of
the runtime itself with its parameters (a ``NativeKernel``: the Winograd step, the GEMM step;
the fused 1x1 + depthwise step, an op of its own: pointwise_depthwise).
"""
from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tuner.kernels.cpu.packing import (WeightLayout, pack_pointwise_depthwise,
                                       pack_gemm_conv_weight, pack_weight,
                                       pack_winograd_nhwc_raw_weight, pack_winograd_nhwc_weight)
from tuner.kernels.cpu.program import spec as s
from tuner.kernels.cpu.program.kernel_graph import Act, Const, KernelGraph, KOp, Post
from tuner.kernels.cpu.geometry import ACTIVATION_CODES
from tuner.kernels.cpu.program.pointwise_depthwise import FUSED_KIND, POINTWISE_DEPTHWISE
from tuner.kernels.cpu.program.workloads import STEP_ACTIVATION_CODES, step_epilogue

_INSTANCES = itertools.count(1)


@dataclass(frozen=True)
class HandKernel:
    """A hand-written kernel variant: ``<shared object>:<entry point>`` and its weight layout."""

    function: str
    layout: WeightLayout

    @property
    def kernel(self) -> str:
        return self.layout.kernel


@dataclass(frozen=True)
class NativeKernel:
    """A kernel the program runtime runs itself (``kernel``: its name in the kernel parameter
    file), with its parameters (name -> value)."""

    kernel: str
    params: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class EmittedProgram:
    spec: s.ProgramSpec
    constants: np.ndarray          # every constant of the program, packed (spec.pack_constants)
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]

    def image(self) -> s.ProgramImage:
        return s.ProgramImage(self.spec.encode(), self.constants, self.input_shape,
                            self.output_shape)


class _Values:
    def __init__(self, kg: KernelGraph):
        self.kg = kg
        self.decls: list[s.ValueDecl] = []
        self.ids: dict = {}
        self.constants: list[np.ndarray] = []
        self.kernels: list[str] = []

    def kernel(self, function: str) -> int:
        if function not in self.kernels:
            self.kernels.append(function)
        return self.kernels.index(function)

    def act(self, act: Act, role: s.Role = s.Role.TEMP, index: int = -1) -> int:
        if act not in self.ids:
            self.ids[act] = len(self.decls)
            self.decls.append(s.ValueDecl(role, index, self.kg.shapes[act.id]))
        return self.ids[act]

    def const(self, const: Const) -> int:
        """The value id of a constant (its offset in the packed array is set by ``emit``)."""
        if const not in self.ids:
            self.ids[const] = len(self.decls)
            array = self.kg.consts[const.id]
            self.decls.append(s.ValueDecl(s.Role.CONST, len(self.constants),
                                          tuple(array.shape) or (1,)))
            self.constants.append(array.reshape(tuple(array.shape) or (1,)))
        return self.ids[const]

    def ref(self, ref) -> int:
        return self.act(ref) if isinstance(ref, Act) else self.const(ref)


def _posts(values: _Values, posts: list[Post]) -> tuple[s.PostOp, ...]:
    return tuple(s.PostOp(p.alg, p.alpha, p.beta,
                          None if p.operand is None else values.ref(p.operand)) for p in posts)


def _external(values: _Values, op: KOp, hand: HandKernel) -> s.Step:
    kg = values.kg
    weights = kg.consts[op.inputs[1].id]
    packed = values.const(kg.new_const(pack_weight(hand.layout, weights)))
    residual, activation, bias = _epilogue_and_bias(values, op)
    top, left, bottom, right = op.attrs["padding"]
    return s.External(values.act(op.inputs[0]), packed, bias, values.act(op.out), residual,
                      values.kernel(hand.function), tuple(weights.shape[2:]),
                      tuple(op.attrs["stride"]), (top, bottom, left, right),
                      ACTIVATION_CODES[activation])


def _epilogue_and_bias(values: _Values, op: KOp) -> tuple[int | None, str, int]:
    """(residual value id or None, activation, bias value id) of a hand-epilogue convolution;
    a missing bias becomes zeros."""
    kg = values.kg
    residual, activation = step_epilogue(op, kg)
    weights = kg.consts[op.inputs[1].id]
    bias = (kg.consts[op.attrs["bias"].id] if op.attrs.get("bias") is not None
            else np.zeros(weights.shape[0], np.float32))
    return (values.ref(op.posts[0].operand) if residual else None, activation,
            values.const(kg.new_const(bias.reshape(-1))))


def packed_native_weights(kernel: str, params: dict, weight: np.ndarray) -> np.ndarray:
    """A convolution's weights (OC, C, kh, kw) as the runtime's own ``kernel`` reads them."""
    if kernel == WINOGRAD_NHWC:
        if params["weights"] == "raw":
            return pack_winograd_nhwc_raw_weight(weight, params["register_vectors"])
        return pack_winograd_nhwc_weight(weight, params["tile_size"], params["register_vectors"])
    if kernel == GEMM_CONV_NHWC:
        return pack_gemm_conv_weight(weight, params["register_vectors"])
    raise ValueError(f"no program step for the kernel {kernel!r}")


def native_step(kernel: str, params: dict, src: int, weights: int, bias: int, dst: int,
                residual: int | None, kernel_size: tuple[int, int], stride: tuple[int, int],
                pad_top_left: tuple[int, int], activation: str) -> s.Step:
    """The step of the runtime's own ``kernel`` (value ids; ``weights`` packed by
    ``packed_native_weights``) for a convolution with the hand-written epilogue."""
    code = STEP_ACTIVATION_CODES[activation]
    if kernel == WINOGRAD_NHWC:
        return s.Winograd(src, weights, bias, dst, residual, params["tile_size"],
                          params["register_rows"], params["register_vectors"],
                          params["tile_block"], params["oc_block"], params["tasks_per_thread"],
                          *pad_top_left, code, params["weights"] == "raw")
    if kernel == GEMM_CONV_NHWC:
        return s.GemmConv(src, weights, bias, dst, residual, tuple(kernel_size), stride[0],
                          *pad_top_left, params["register_rows"], params["register_vectors"],
                          params["tasks_per_thread"], code, params["depth_block"])
    raise ValueError(f"no program step for the kernel {kernel!r}")


def _native(values: _Values, op: KOp, native: NativeKernel) -> s.Step:
    kg = values.kg
    params = dict(native.params)
    residual, activation, bias = _epilogue_and_bias(values, op)
    weight = kg.consts[op.inputs[1].id]
    weights = packed_native_weights(native.kernel, params, weight)
    top, left, _, _ = op.attrs["padding"]
    return native_step(native.kernel, params, values.act(op.inputs[0]),
                       values.const(kg.new_const(weights)), bias, values.act(op.out), residual,
                       weight.shape[2:], tuple(op.attrs["stride"]), (top, left), activation)


def _pointwise_depthwise(values: _Values, op: KOp) -> s.Step:
    kg, params = values.kg, op.attrs["params"]
    pointwise, depthwise = op.attrs["pointwise"], op.attrs["depthwise"]
    projection = op.attrs.get("projection")

    def parts(conv: KOp):
        weights = kg.consts[conv.inputs[1].id]
        bias = (kg.consts[conv.attrs["bias"].id] if conv.attrs.get("bias") is not None
                else np.zeros(weights.shape[0], np.float32))
        return weights, bias, step_epilogue(conv, kg)

    w1, b1, (_, act1) = parts(pointwise) if pointwise else (None, None, (False, "none"))
    wd, bd, (_, act2) = parts(depthwise)
    wp, bp, (residual, act3) = parts(projection) if projection else (None, None, (False, "none"))
    weights = values.const(kg.new_const(pack_pointwise_depthwise(w1, b1, wd, bd, wp, bp)))
    top, left, _, _ = depthwise.attrs["padding"]
    return s.PointwiseDepthwise(values.act(op.inputs[0]), weights, values.act(op.out),
                                depthwise.attrs["stride"][0], top, left,
                                STEP_ACTIVATION_CODES[act1], STEP_ACTIVATION_CODES[act2],
                                params["register_rows"], params["register_vectors"],
                                params["tasks_per_thread"], wd.shape[0],
                                wp.shape[0] if projection else 0,
                                values.act(op.inputs[1]) if residual else None,
                                STEP_ACTIVATION_CODES[act3], wd.shape[-1], pointwise is not None)


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
        return s.MatMul(ins[0], ins[1], bias, out, a["transpose_a"], a["transpose_b"], impl,
                        posts)
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
    if op.kind == "groupnorm":
        return s.GroupNorm(ins[0], ins[1], ins[2], out, a["groups"], a["epsilon"])
    if op.kind == "resample":
        return s.Resample(ins[0], out)
    if op.kind == "transpose":
        return s.Transpose(ins[0], out, tuple(a["perm"]))
    if op.kind == "reshape":
        return s.Reshape(ins[0], out)
    if op.kind == "slice":
        return s.Slice(ins[0], out, tuple(a["offsets"]))
    raise ValueError(f"no program step for a {op.kind!r} op")


WINOGRAD_NHWC = "conv2d_winograd_nhwc"
GEMM_CONV_NHWC = "conv2d_gemm_nhwc"
# The runtime's own kernels that run one convolution as one step (native_step); the
# pointwise+depthwise kernel runs a fused pair of them instead.
ONE_CONVOLUTION_KERNELS = (WINOGRAD_NHWC, GEMM_CONV_NHWC)
ChoiceFor = Callable[[KOp, KernelGraph], "tuple[int, HandKernel | NativeKernel | None]"]


def emit(kg: KernelGraph, layout: s.Layout, choice_for: ChoiceFor, uid_seed: str) -> EmittedProgram:
    """The spec of a fused kernel graph; its uid (from ``uid_seed``, e.g. the layer path, and a
    counter of the process) makes each program cell's spec unique."""
    values = _Values(kg)
    values.act(kg.input, s.Role.INPUT, s.INPUT_INDEX)
    steps = []
    for op in kg.ops:
        impl, hand = choice_for(op, kg) if op.kind in ("conv", "matmul") else (0, None)
        if isinstance(hand, NativeKernel) and hand.kernel == POINTWISE_DEPTHWISE:
            hand = None  # no 1x1 convolution to absorb (fuse_pointwise_depthwise): oneDNN
        if op.kind == FUSED_KIND:
            steps.append(_pointwise_depthwise(values, op))
        elif isinstance(hand, NativeKernel):
            steps.append(_native(values, op, hand))
        else:
            steps.append(_external(values, op, hand) if hand else _step(values, op, impl))
    output = values.ids.get(kg.output)
    if output is None or kg.output == kg.input:
        raise ValueError("the program computes nothing")
    decl = values.decls[output]
    values.decls[output] = s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, decl.dims)
    packed, offsets = s.pack_constants(values.constants)
    values.decls = [s.ValueDecl(d.role, offsets[d.index], d.dims) if d.role == s.Role.CONST else d
                    for d in values.decls]
    uid = zlib.crc32(uid_seed.encode()) << 24 | (next(_INSTANCES) & 0xFFFFFF)
    spec = s.ProgramSpec(uid, layout, tuple(values.decls), tuple(steps), tuple(values.kernels))
    return EmittedProgram(spec, packed, kg.shapes[kg.input.id], kg.shapes[kg.output.id])
