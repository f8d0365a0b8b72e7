"""The program spec: what ``kernels/cpu/program/program.cpp`` runs, as one int64 vector.

A program is a list of values (tensors, float32) and a list of steps that compute them in order.
The encoding, read by ``Program::build`` in the same order:

* header ``[MAGIC, VERSION, uid, n_values, n_steps, layout, n_kernels]``; ``layout`` is the
  activation layout convolutions are asked for (``Layout``); then each external kernel (a
  hand-written AOT kernel of kernels/cpu that ``External`` steps call) as
  ``[n_bytes, bytes packed 8 to a word...]`` of ``<shared object path>:<entry point>``;
* per value ``[role, index, ndims, dims...]``: the operator's parameters are ``(spec, input,
  constants, output)``; the input (role INPUT, index 1) and the output (OUTPUT, index 3) are
  plain row-major float32 tensors; every constant is a plain row-major tensor inside the one
  float32 constants array, at ``index`` floats from its start (``pack_constants``: aligned to
  64 bytes); temporaries live in the runtime's arena;
* per step ``[kind, n_fields, fields...]`` with the fields each step class lists in
  ``fields()``; post-ops are ``[n, (kind, a, b, c) x n]`` (``PostOp``); float attributes are the
  bits of a float64.

``uid`` makes the spec of every program cell unique: the runtime keeps one built program (its
primitives and packed weights) per distinct spec.

The runtime validates all of it and refuses (status 1, one line from ``ProgramLastError``)
whatever it does not understand, never reading or writing out of bounds: the header and values
in ``kernels/cpu/program/spec_reader.h`` (exactly one input and one output, a temporary's index
-1, a constant's offset + size within the constants array, dims positive and below 2^31
elements a value, no word left over); each step's fields decoded into a named struct, one per
kind, whose decoder is the C++ twin of the step class's ``fields()`` below (in ``step_specs.h``:
``PostOp``, ``ConvStep``, ``PoolStep``, ``EltwiseStep``, ``BinaryStep``, ``ConcatStep``,
``MatMulStep``, ``ReduceStep``, ``NormStep`` for LayerNorm and GroupNorm, ``SoftmaxStep``,
``TransposeStep``, ``SourceToDestination`` for Reshape and Resample, ``SliceStep``; in
``native_steps.h``: ``ExternalStep``, ``WinogradStep``, ``GemmConvStep``,
``PointwiseDepthwiseStep``): the exact field count, every integer in range,
operands declared values defined by an earlier step (or inputs/constants), results temporaries
or the output, the operands' shapes consistent with the step; and, on every call, the
parameters' dtypes, the input's and output's dims and the constants array's length
(``Program::check_call``).
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

MAGIC = 0x5450524F47
VERSION = 2
INPUT_INDEX, CONSTANTS_INDEX, OUTPUT_INDEX = 1, 2, 3
_ALIGN = 16  # floats: 64 bytes


class Role(enum.IntEnum):
    INPUT = 0
    CONST = 1
    TEMP = 2
    OUTPUT = 3


class Layout(enum.IntEnum):
    """The activation layout convolutions are asked for (4-D activations)."""

    ANY = 0      # oneDNN chooses per convolution
    NHWC = 1     # channels last
    BLOCKED = 2  # nChw16c: channels in blocks of 16 (one AVX-512 vector)


class Alg(enum.IntEnum):
    """oneDNN algorithm kinds (dnnl_alg_kind_t, kernels/cpu/program/dnnl_abi.h)."""

    RELU = 0x20
    TANH = 0x21
    LINEAR = 0x26          # alpha * x + beta
    HARDSIGMOID = 0x28     # max(0, min(1, alpha * x + beta))
    LOGISTIC = 0x29        # sigmoid
    GELU_TANH = 0x2B
    SWISH = 0x2C           # x * sigmoid(alpha * x)
    CLIP = 0x2F            # min(max(x, alpha), beta)  (clip_v2)
    GELU_ERF = 0x31
    HARDSWISH = 0x34       # x * max(0, min(1, alpha * x + beta))
    POOL_MAX = 0x1FF
    POOL_AVG_INCLUDE = 0x2FF
    POOL_AVG_EXCLUDE = 0x3FF
    ADD = 0x1FFF0
    MUL = 0x1FFF1
    MAX = 0x1FFF2
    MIN = 0x1FFF3
    DIV = 0x1FFF4
    SUB = 0x1FFF5
    REDUCE_MAX = 0x2FFF2
    REDUCE_SUM = 0x2FFF4
    REDUCE_MEAN = 0x2FFF6


def pack_constants(arrays) -> tuple[np.ndarray, tuple[int, ...]]:
    """The constants as one float32 array, each at an offset aligned to 64 bytes; the offsets."""
    offsets, total = [], 0
    for array in arrays:
        offsets.append(total)
        total += -(-max(np.asarray(array).size, 1) // _ALIGN) * _ALIGN
    packed = np.zeros(max(total, _ALIGN), np.float32)
    for offset, array in zip(offsets, arrays):
        flat = np.asarray(array, np.float32).reshape(-1)
        packed[offset:offset + flat.size] = flat
    return packed, tuple(offsets)


def float_bits(value: float) -> int:
    return struct.unpack("<q", struct.pack("<d", float(value)))[0]


@dataclass(frozen=True)
class PostOp:
    """An operation fused after a step's result: an element-wise function (``alg``, ``alpha``,
    ``beta``) or a binary operation with another value (``alg``, ``operand``: its value id;
    ranks must match, dimensions of 1 broadcast)."""

    alg: Alg
    alpha: float = 0.0
    beta: float = 0.0
    operand: int | None = None

    def fields(self) -> list[int]:
        if self.operand is None:
            return [1, int(self.alg), float_bits(self.alpha), float_bits(self.beta)]
        return [3, int(self.alg), int(self.operand), 0]


def _post_fields(posts: tuple[PostOp, ...]) -> list[int]:
    return [len(posts), *(v for p in posts for v in p.fields())]


@dataclass(frozen=True)
class Step:
    KIND: ClassVar[int] = 0

    def fields(self) -> list[int]:
        raise NotImplementedError

    def inputs(self) -> tuple[int, ...]:
        """The value ids this step reads."""
        raise NotImplementedError

    def output(self) -> int:
        raise NotImplementedError


@dataclass(frozen=True)
class Conv(Step):
    """dst = posts(conv(src, weights) + bias); weights (O, I/groups, KH, KW); padding
    (top, left, bottom, right); dilation 1 = none; ``impl``: take oneDNN's impl-th
    implementation instead of its first choice."""

    KIND: ClassVar[int] = 1
    src: int
    weights: int
    bias: int | None
    dst: int
    groups: int
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int] = (1, 1)
    impl: int = 0
    posts: tuple[PostOp, ...] = ()

    def fields(self) -> list[int]:
        return [self.src, self.weights, -1 if self.bias is None else self.bias, self.dst,
                self.groups, *self.stride, *self.padding, *self.dilation, self.impl,
                *_post_fields(self.posts)]

    def inputs(self):
        return (self.src, self.weights, *(() if self.bias is None else (self.bias,)),
                *(p.operand for p in self.posts if p.operand is not None))

    def output(self):
        return self.dst


@dataclass(frozen=True)
class Pool(Step):
    """Max or average pooling (``alg``); padding (top, left, bottom, right)."""

    KIND: ClassVar[int] = 2
    src: int
    dst: int
    alg: Alg
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    posts: tuple[PostOp, ...] = ()

    def fields(self) -> list[int]:
        return [self.src, self.dst, int(self.alg), *self.kernel, *self.stride, *self.padding,
                *_post_fields(self.posts)]

    def inputs(self):
        return (self.src, *(p.operand for p in self.posts if p.operand is not None))

    def output(self):
        return self.dst


@dataclass(frozen=True)
class Eltwise(Step):
    """dst = alg(src; alpha, beta), of src's dims."""

    KIND: ClassVar[int] = 3
    src: int
    dst: int
    alg: Alg
    alpha: float = 0.0
    beta: float = 0.0

    def fields(self) -> list[int]:
        return [self.src, self.dst, int(self.alg), float_bits(self.alpha), float_bits(self.beta)]

    def inputs(self):
        return (self.src,)

    def output(self):
        return self.dst


@dataclass(frozen=True)
class Binary(Step):
    """dst = posts(src0 <alg> src1); src1 may broadcast (dimensions of 1), src0 may not."""

    KIND: ClassVar[int] = 4
    src0: int
    src1: int
    dst: int
    alg: Alg
    posts: tuple[PostOp, ...] = ()

    def fields(self) -> list[int]:
        return [self.src0, self.src1, self.dst, int(self.alg), *_post_fields(self.posts)]

    def inputs(self):
        return (self.src0, self.src1, *(p.operand for p in self.posts if p.operand is not None))

    def output(self):
        return self.dst


@dataclass(frozen=True)
class Concat(Step):
    """dst = the sources joined along ``axis`` (all of dst's rank)."""

    KIND: ClassVar[int] = 5
    srcs: tuple[int, ...]
    dst: int
    axis: int

    def fields(self) -> list[int]:
        return [self.dst, self.axis, len(self.srcs), *self.srcs]

    def inputs(self):
        return self.srcs

    def output(self):
        return self.dst


@dataclass(frozen=True)
class MatMul(Step):
    """dst = posts(op(src) @ op(weights) + bias), op transposing the last two axes where asked;
    ranks equal (dimensions of 1 broadcast); constant weights are packed once. ``impl`` 0: the
    runtime's choice (a dense layer's product as oneDNN's brgemm 1x1 convolution where oneDNN's
    matrix product would leave brgemm); k > 0: oneDNN's matrix product, its k-th offer (1: its
    own first choice)."""

    KIND: ClassVar[int] = 6
    src: int
    weights: int
    bias: int | None
    dst: int
    transpose_src: bool = False
    transpose_weights: bool = False
    impl: int = 0
    posts: tuple[PostOp, ...] = ()

    def fields(self) -> list[int]:
        return [self.src, self.weights, -1 if self.bias is None else self.bias, self.dst,
                int(self.transpose_src), int(self.transpose_weights), self.impl,
                *_post_fields(self.posts)]

    def inputs(self):
        return (self.src, self.weights, *(() if self.bias is None else (self.bias,)),
                *(p.operand for p in self.posts if p.operand is not None))

    def output(self):
        return self.dst


@dataclass(frozen=True)
class Reduce(Step):
    """Reduction over the axes where dst has dimension 1 and src has more."""

    KIND: ClassVar[int] = 7
    src: int
    dst: int
    alg: Alg = Alg.REDUCE_MEAN

    def fields(self) -> list[int]:
        return [self.src, self.dst, int(self.alg)]

    def inputs(self):
        return (self.src,)

    def output(self):
        return self.dst


@dataclass(frozen=True)
class LayerNorm(Step):
    """Normalisation over the last axis, then * scale + shift (both 1-D, of its length)."""

    KIND: ClassVar[int] = 8
    src: int
    scale: int
    shift: int
    dst: int
    epsilon: float

    def fields(self) -> list[int]:
        return [self.src, self.scale, self.shift, self.dst, float_bits(self.epsilon)]

    def inputs(self):
        return (self.src, self.scale, self.shift)

    def output(self):
        return self.dst


@dataclass(frozen=True)
class Softmax(Step):
    """Softmax along ``axis``."""

    KIND: ClassVar[int] = 9
    src: int
    dst: int
    axis: int

    def fields(self) -> list[int]:
        return [self.src, self.dst, self.axis]

    def inputs(self):
        return (self.src,)

    def output(self):
        return self.dst


@dataclass(frozen=True)
class Transpose(Step):
    """dst dimension i is src dimension ``perm[i]``."""

    KIND: ClassVar[int] = 10
    src: int
    dst: int
    perm: tuple[int, ...]

    def fields(self) -> list[int]:
        return [self.src, self.dst, *self.perm]

    def inputs(self):
        return (self.src,)

    def output(self):
        return self.dst


@dataclass(frozen=True)
class _SourceToDestination(Step):
    """A step of one input and one output and no other field."""

    src: int
    dst: int

    def fields(self) -> list[int]:
        return [self.src, self.dst]

    def inputs(self):
        return (self.src,)

    def output(self):
        return self.dst


@dataclass(frozen=True)
class Reshape(_SourceToDestination):
    """The same elements in row-major order, other dimensions (no copy)."""

    KIND: ClassVar[int] = 11


@dataclass(frozen=True)
class Slice(Step):
    """dst = src[offsets[0]:offsets[0]+dst.dims[0], ...]."""

    KIND: ClassVar[int] = 12
    src: int
    dst: int
    offsets: tuple[int, ...]

    def fields(self) -> list[int]:
        return [self.src, self.dst, *self.offsets]

    def inputs(self):
        return (self.src,)

    def output(self):
        return self.dst


@dataclass(frozen=True)
class External(Step):
    """dst = act(conv(src, weights) + bias [+ residual]) by the hand-written kernel
    ``kernel`` (an index into the spec's kernels), on plain NCHW tensors; ``weights`` are packed
    as that kernel variant expects; ``padding`` (top, bottom, left, right) and ``activation``
    are its geometry (kernels/cpu/conv_common.h). The runtime knows the weights' size of the
    kernels of kernels/cpu (Conv2dDense, Conv2dDepthwise, Conv2dWinograd) and refuses others."""

    KIND: ClassVar[int] = 13
    src: int
    weights: int
    bias: int
    dst: int
    residual: int | None
    kernel: int
    window: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    activation: int

    def fields(self) -> list[int]:
        return [self.src, self.weights, self.bias, self.dst,
                -1 if self.residual is None else self.residual, self.kernel, *self.window,
                *self.stride, *self.padding, self.activation]

    def inputs(self):
        return (self.src, self.weights, self.bias,
                *(() if self.residual is None else (self.residual,)))

    def output(self):
        return self.dst


@dataclass(frozen=True)
class GroupNorm(Step):
    """Normalisation over ``groups`` groups of channels (axis 1), then * scale + shift (per
    channel)."""

    KIND: ClassVar[int] = 14
    src: int
    scale: int
    shift: int
    dst: int
    groups: int
    epsilon: float

    def fields(self) -> list[int]:
        return [self.src, self.scale, self.shift, self.dst, self.groups, float_bits(self.epsilon)]

    def inputs(self):
        return (self.src, self.scale, self.shift)

    def output(self):
        return self.dst


@dataclass(frozen=True)
class Resample(_SourceToDestination):
    """Nearest-neighbour resampling of the spatial axes to dst's size (integer factors)."""

    KIND: ClassVar[int] = 15


@dataclass(frozen=True)
class Winograd(Step):
    """dst = act(conv3x3(src, weights) + bias [+ residual]), stride 1, by the runtime's own
    Winograd F(m x m, 3 x 3) kernel (kernels/cpu/program/winograd.h) on channels-last values;
    ``weights`` packed by ``packing.pack_winograd_nhwc_weight`` for ``tile_size`` and
    ``register_vectors`` (or, ``raw_weights``, by ``pack_winograd_nhwc_raw_weight``: transformed
    per call); ``activation``: 0 none, 1 ReLU, 2 ReLU6. The tiling fields are that kernel's
    parameters (search_spaces/cpu_kernels.yaml)."""

    KIND: ClassVar[int] = 16
    src: int
    weights: int
    bias: int
    dst: int
    residual: int | None
    tile_size: int
    register_rows: int
    register_vectors: int
    tile_block: int
    oc_block: int
    tasks_per_thread: int
    pad_top: int
    pad_left: int
    activation: int
    raw_weights: bool = False

    def fields(self) -> list[int]:
        return [self.src, self.weights, self.bias, self.dst,
                -1 if self.residual is None else self.residual, self.tile_size,
                self.register_rows, self.register_vectors, self.tile_block, self.oc_block,
                self.tasks_per_thread, self.pad_top, self.pad_left, self.activation,
                int(self.raw_weights)]

    def inputs(self):
        return (self.src, self.weights, self.bias,
                *(() if self.residual is None else (self.residual,)))

    def output(self):
        return self.dst


@dataclass(frozen=True)
class GemmConv(Step):
    """dst = act(conv(src, weights) + bias [+ residual]) for a ``kernel_size`` window (groups 1,
    dilation 1, square ``stride``, padding ``pad_top``/``pad_left`` before and what dst's size
    implies after), as one GEMM by the runtime's own kernel (kernels/cpu/program/gemm_conv.h) on
    channels-last values; ``weights`` packed by ``packing.pack_gemm_conv_weight`` for
    ``register_vectors``; ``activation``: 0 none, 1 ReLU, 2 ReLU6, 3 SiLU. The tiling fields are
    that kernel's parameters (search_spaces/cpu_kernels.yaml)."""

    KIND: ClassVar[int] = 18
    src: int
    weights: int
    bias: int
    dst: int
    residual: int | None
    kernel_size: tuple[int, int]
    stride: int
    pad_top: int
    pad_left: int
    register_rows: int
    register_vectors: int
    tasks_per_thread: int
    activation: int
    depth_block: int = 0

    def fields(self) -> list[int]:
        return [self.src, self.weights, self.bias, self.dst,
                -1 if self.residual is None else self.residual, *self.kernel_size, self.stride,
                self.pad_top, self.pad_left, self.register_rows, self.register_vectors,
                self.tasks_per_thread, self.activation, self.depth_block]

    def inputs(self):
        return (self.src, self.weights, self.bias,
                *(() if self.residual is None else (self.residual,)))

    def output(self):
        return self.dst


@dataclass(frozen=True)
class PointwiseDepthwise(Step):
    """dst = act2(depthwise(act1(conv1x1(src) + b1)) + bd): a 1x1 convolution and the depthwise
    convolution (a ``window`` of 3x3 or 5x5, ``stride`` 1 or 2, padding ``pad_top``/``pad_left``
    up to half the window) that reads it, fused (kernels/cpu/program/pointwise_depthwise.h) on
    channels-last values; with ``projection_channels`` (0: none), the 1x1 convolution that
    reads the depthwise result too: dst = act3(conv1x1(that) + bp [+ residual]). Without
    ``expand``, no 1x1 convolution comes first: dst = act2(depthwise(src) + bd) (then the
    projection), src read as it is if blocked by 8 or 16 channels. ``channels``:
    the depthwise layer's; ``weights`` packed by ``packing.pack_pointwise_depthwise``;
    activations 0 none, 1 ReLU, 2 ReLU6, 3 SiLU. The tiling fields are that kernel's parameters
    (search_spaces/cpu_kernels.yaml)."""

    KIND: ClassVar[int] = 17
    src: int
    weights: int
    dst: int
    stride: int
    pad_top: int
    pad_left: int
    pointwise_activation: int
    depthwise_activation: int
    register_rows: int
    register_vectors: int
    tasks_per_thread: int
    channels: int
    projection_channels: int = 0
    residual: int | None = None
    projection_activation: int = 0
    window: int = 3
    expand: bool = True

    def fields(self) -> list[int]:
        return [self.src, self.weights, self.dst, self.stride, self.pad_top, self.pad_left,
                self.pointwise_activation, self.depthwise_activation, self.register_rows,
                self.register_vectors, self.tasks_per_thread, self.channels,
                self.projection_channels, -1 if self.residual is None else self.residual,
                self.projection_activation, self.window, int(self.expand)]

    def inputs(self):
        return (self.src, self.weights, *(() if self.residual is None else (self.residual,)))

    def output(self):
        return self.dst


@dataclass(frozen=True)
class ValueDecl:
    role: Role
    index: int
    dims: tuple[int, ...]

    def fields(self) -> list[int]:
        return [int(self.role), self.index, len(self.dims), *self.dims]


@dataclass(frozen=True)
class ProgramSpec:
    uid: int
    layout: Layout
    values: tuple[ValueDecl, ...]
    steps: tuple[Step, ...] = field(default_factory=tuple)
    kernels: tuple[str, ...] = ()   # "<shared object>:<entry point>" of the External steps

    def encode(self) -> np.ndarray:
        words = [MAGIC, VERSION, self.uid, len(self.values), len(self.steps), int(self.layout),
                 len(self.kernels)]
        for kernel in self.kernels:
            data = kernel.encode()
            padded = data + b"\0" * (-len(data) % 8)
            words.append(len(data))
            words.extend(int(w) for w in np.frombuffer(padded, dtype="<i8"))
        for value in self.values:
            words.extend(value.fields())
        for step in self.steps:
            fields = step.fields()
            words.extend([step.KIND, len(fields), *fields])
        return np.asarray(words, dtype=np.int64)


@dataclass(frozen=True)
class ProgramImage:
    """A program as the runtime reads it: the encoded spec (int64 words), every constant packed
    in one float32 array, and the input and output shapes (float32)."""

    words: np.ndarray
    constants: np.ndarray
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


_HEADER = 7  # [MAGIC, VERSION, uid, n_values, n_steps, layout, n_kernels]


def encoded_kernels(words: np.ndarray) -> tuple[tuple[str, ...], int]:
    """The external kernels (``<shared object>:<entry point>``) of an encoded spec, and the
    index of the first word after them. ValueError for words that are not a spec's."""
    words = np.asarray(words, dtype=np.int64)
    if len(words) < _HEADER or int(words[0]) != MAGIC or int(words[1]) != VERSION:
        raise ValueError("not a program spec of this version")
    count, at, kernels = int(words[6]), _HEADER, []
    if not 0 <= count <= len(words):
        raise ValueError(f"bad kernel count {count}")
    for _ in range(count):
        length = int(words[at]) if at < len(words) else -1
        end = at + 1 + (length + 7) // 8
        if length < 0 or end > len(words):
            raise ValueError("kernel name runs past the spec")
        kernels.append(words[at + 1:end].astype("<i8").tobytes()[:length].decode())
        at = end
    return tuple(kernels), at


def with_kernels(words: np.ndarray, kernels: tuple[str, ...]) -> np.ndarray:
    """The encoded spec ``words`` with its external kernels replaced by ``kernels`` (as many:
    the steps name them by index), e.g. the same libraries at another place."""
    old, end = encoded_kernels(words)
    if len(old) != len(kernels):
        raise ValueError(f"{len(kernels)} kernels for a spec of {len(old)}")
    section = []
    for kernel in kernels:
        data = kernel.encode()
        section.append(len(data))
        section.extend(int(w) for w in np.frombuffer(data + b"\0" * (-len(data) % 8), "<i8"))
    head = np.asarray(words[:_HEADER], dtype=np.int64)
    return np.concatenate([head, np.asarray(section, np.int64),
                           np.asarray(words[end:], np.int64)])
