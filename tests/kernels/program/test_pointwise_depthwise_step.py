"""The runtime's fused 1x1 + 3x3 depthwise step (kernels/cpu/program/pointwise_depthwise.h)
against float64 convolutions: strides, paddings, register tiles (and a row's tail pixels),
channel blocks and the thread split, activations, every program layout; with the projection
(output channels not a multiple of 16, a residual add, row strips); a malformed step is
refused in words."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import needs_avx2_fma
from tests.kernels.program.test_program_runtime import RNG, close, conv_reference, run
from tuner.cpuinfo import flags as cpu_flags
from tuner.kernels.cpu.packing import pack_pointwise_depthwise
from tuner.kernels.cpu.program import program_runtime
from tuner.kernels.cpu.program import spec as s

# (n, k, h, w, c, stride, pad, register_rows, register_vectors, tasks_per_thread)
SHAPES = [
    (1, 16, 12, 14, 96, 1, 1, 14, 2, 1),   # 14 pixels a tile: one tile a row; 3 x 32 channels
    (2, 24, 11, 9, 144, 2, 1, 4, 2, 2),    # odd sizes, stride 2, a 16-channel last panel
    (1, 32, 7, 7, 64, 1, 1, 12, 1, 4),     # 7 pixels under a 12-pixel tile: the tail path
    (3, 8, 8, 10, 32, 1, 0, 6, 2, 1),      # no padding, three images
    (1, 20, 10, 10, 48, 2, 0, 8, 1, 2),    # stride 2 without padding
]
ACTIVATIONS = {0: lambda y: y, 1: lambda y: np.maximum(y, 0), 2: lambda y: np.clip(y, 0, 6),
               3: lambda y: y / (1 + np.exp(-y))}   # SiLU


def _reference(x, w1, b1, wd, bd, stride, pad, act1, act2):
    """pad: one number, or (top, left, bottom, right)."""
    expanded = ACTIVATIONS[act1](conv_reference(x, w1, b1, (1, 1), (0, 0, 0, 0)))
    channels = wd.shape[0]
    pads = (pad,) * 4 if isinstance(pad, int) else pad
    out = conv_reference(expanded, wd, bd, (stride, stride), pads, groups=channels)
    return ACTIVATIONS[act2](out)


def _problem(n, k, h, w, c, window=3):
    x = RNG.standard_normal((n, k, h, w)).astype(np.float32)
    w1 = (RNG.standard_normal((c, k, 1, 1)) / np.sqrt(k)).astype(np.float32)
    b1 = RNG.standard_normal(c).astype(np.float32)
    wd = (RNG.standard_normal((c, 1, window, window)) / window).astype(np.float32)
    bd = RNG.standard_normal(c).astype(np.float32)
    return x, w1, b1, wd, bd


def _output_dims(n, c, h, w, stride, pad, window=3):
    top, left, bottom, right = (pad,) * 4 if isinstance(pad, int) else pad
    return (n, c, (h + top + bottom - window) // stride + 1,
            (w + left + right - window) // stride + 1)


@needs_avx2_fma
@pytest.mark.parametrize("layout", [s.Layout.NHWC, s.Layout.ANY, s.Layout.BLOCKED])
@pytest.mark.parametrize("n,k,h,w,c,stride,pad,rows,vecs,tasks", SHAPES)
@pytest.mark.parametrize("act1, act2", [(2, 2), (1, 0), (3, 3)])
def test_matches_float64_convolutions(program_library, layout, n, k, h, w, c, stride, pad, rows,
                                      vecs, tasks, act1, act2):
    x, w1, b1, wd, bd = _problem(n, k, h, w, c)
    expected = _reference(x, w1, b1, wd, bd, stride, pad, act1, act2)
    assert (expected == 0).any() or act2 in (0, 3)
    step = s.PointwiseDepthwise(0, 1, 2, stride, pad, pad, act1, act2, rows, vecs, tasks, c)
    packed = pack_pointwise_depthwise(w1, b1, wd, bd)
    dims = _output_dims(n, c, h, w, stride, pad)
    assert dims == expected.shape
    close(run(program_library, layout, [x], [packed], [], dims, [step]), expected)


# 5x5 windows: (n, k, h, w, c, stride, pad (top, left, bottom, right), rows, vecs, tasks)
WIDE_SHAPES = [
    (1, 16, 12, 14, 48, 1, (2, 2, 2, 2), 14, 2, 1),   # 'same' padding
    (2, 24, 11, 9, 64, 2, (1, 2, 2, 1), 4, 2, 2),     # stride 2, uneven padding (TF 'same')
    (1, 32, 9, 9, 32, 1, (0, 0, 0, 0), 6, 1, 4),      # no padding
]


@needs_avx2_fma
@pytest.mark.parametrize("projection", [0, 24])
@pytest.mark.parametrize("n,k,h,w,c,stride,pad,rows,vecs,tasks", WIDE_SHAPES)
def test_a_5x5_window_matches_float64_convolutions(program_library, n, k, h, w, c, stride, pad,
                                                   rows, vecs, tasks, projection):
    x, w1, b1, wd, bd = _problem(n, k, h, w, c, window=5)
    expected = _reference(x, w1, b1, wd, bd, stride, pad, 3, 3)
    packed, dims = pack_pointwise_depthwise(w1, b1, wd, bd), expected.shape
    if projection:
        wp = (RNG.standard_normal((projection, c, 1, 1)) / np.sqrt(c)).astype(np.float32)
        bp = RNG.standard_normal(projection).astype(np.float32)
        expected = conv_reference(expected, wp, bp, (1, 1), (0, 0, 0, 0))
        packed, dims = pack_pointwise_depthwise(w1, b1, wd, bd, wp, bp), expected.shape
    assert dims == _output_dims(n, projection or c, h, w, stride, pad, window=5)
    step = s.PointwiseDepthwise(0, 1, 2, stride, pad[0], pad[1], 3, 3, rows, vecs, tasks, c,
                                projection, None, 0, 5)
    close(run(program_library, s.Layout.NHWC, [x], [packed], [], dims, [step]), expected)


@needs_avx2_fma
@pytest.mark.parametrize("layout", [s.Layout.NHWC, s.Layout.BLOCKED])
@pytest.mark.parametrize("n,k,h,w,c,stride,pad,rows,vecs,tasks", SHAPES)
@pytest.mark.parametrize("outputs, with_residual, act3", [(24, True, 0), (40, False, 2),
                                                           (16, True, 1), (32, True, 3)])
def test_with_the_projection(program_library, layout, n, k, h, w, c, stride, pad, rows, vecs,
                             tasks, outputs, with_residual, act3):
    x, w1, b1, wd, bd = _problem(n, k, h, w, c)
    wp = (RNG.standard_normal((outputs, c, 1, 1)) / np.sqrt(c)).astype(np.float32)
    bp = RNG.standard_normal(outputs).astype(np.float32)
    dims = _output_dims(n, outputs, h, w, stride, pad)
    expected = conv_reference(_reference(x, w1, b1, wd, bd, stride, pad, 2, 1), wp, bp, (1, 1),
                              (0, 0, 0, 0))
    packed = pack_pointwise_depthwise(w1, b1, wd, bd, wp, bp)
    constants = [packed]
    if with_residual:  # the residual is a constant here; in a network, the block's input
        residual = RNG.standard_normal(dims).astype(np.float32)
        expected = expected + residual
        constants.append(residual)
    expected = ACTIVATIONS[act3](expected)
    step = s.PointwiseDepthwise(0, 1, 3 if with_residual else 2, stride, pad, pad, 2, 1, rows,
                                vecs, tasks, c, outputs, 2 if with_residual else None, act3)
    close(run(program_library, layout, [x], constants, [], dims, [step]), expected)


# (n, h, w, c, stride, pad, register_rows, register_vectors, tasks_per_thread, outputs)
UNEXPANDED = [
    (1, 14, 14, 32, 1, 1, 6, 1, 1, 16),   # MobileNetV2's first block, in miniature
    (2, 11, 9, 48, 2, 1, 4, 2, 2, 24),    # odd sizes, stride 2, three 16-channel blocks
    (1, 7, 7, 64, 1, 0, 12, 1, 4, 40),    # no padding, the tail path of the projection
]


@needs_avx2_fma
@pytest.mark.parametrize("layout", [s.Layout.NHWC, s.Layout.BLOCKED, s.Layout.ANY])
@pytest.mark.parametrize("n,h,w,c,stride,pad,rows,vecs,tasks,outputs", UNEXPANDED)
@pytest.mark.parametrize("with_residual", [False, True])
def test_without_the_expansion_the_step_reads_its_input_rows_in_their_layout(
        program_library, layout, n, h, w, c, stride, pad, rows, vecs, tasks, outputs,
        with_residual):
    """An inverted residual of expansion ratio 1: depthwise + projection (+ residual) on the
    result of a 3x3 convolution of an image before it (a stem), read as that convolution left
    it (nChw16c in a blocked program; with ANY, oneDNN's choice: nChw8c with AVX2, nChw16c
    with AVX-512): no conversion between the two steps."""
    x = RNG.standard_normal((n, 3, h, w)).astype(np.float32)  # an image: oneDNN's jit kernel
    weight = (RNG.standard_normal((c, 3, 3, 3)) / 3).astype(np.float32)
    bias = RNG.standard_normal(c).astype(np.float32)
    image = conv_reference(x, weight, bias, (1, 1), (1, 1, 1, 1)).astype(np.float32)
    _, _, _, wd, bd = _problem(n, c, h, w, c)
    wp = (RNG.standard_normal((outputs, c, 1, 1)) / np.sqrt(c)).astype(np.float32)
    bp = RNG.standard_normal(outputs).astype(np.float32)
    dims = _output_dims(n, outputs, h, w, stride, pad)
    depthwise = ACTIVATIONS[2](conv_reference(image, wd, bd, (stride, stride), (pad,) * 4,
                                              groups=c))
    expected = conv_reference(depthwise, wp, bp, (1, 1), (0, 0, 0, 0))
    constants = [weight, bias, pack_pointwise_depthwise(None, None, wd, bd, wp, bp)]
    if with_residual:
        constants.append(RNG.standard_normal(dims).astype(np.float32))
        expected = expected + constants[-1]
    packed, offsets = s.pack_constants(constants)
    values = (s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, x.shape),
              *(s.ValueDecl(s.Role.CONST, o, a.shape) for o, a in zip(offsets, constants)),
              s.ValueDecl(s.Role.TEMP, -1, image.shape),
              s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, dims))
    temp = len(values) - 2
    steps = (s.Conv(0, 1, 2, temp, 1, (1, 1), (1, 1, 1, 1)),
             s.PointwiseDepthwise(temp, 3, temp + 1, stride, pad, pad, 0, 2, rows, vecs, tasks,
                                  c, outputs, 4 if with_residual else None, 0, expand=False))
    words = s.ProgramSpec(int(RNG.integers(1, 2**40)), layout, values, steps).encode()
    call = program_runtime.DirectProgram(program_library, words, [x, packed], dims)
    assert call() == 0
    close(call.output, expected)
    times = program_runtime.timings(program_library, np.asarray(words))
    conversions = [a for a in times.actions if a.label == "reorder" and a.step == 1]
    assert len(conversions) == int(with_residual), conversions  # the residual constant's


@pytest.mark.parametrize("change, message", [
    ({"register_rows": 5}, "no register tile"),
    ({"channels": 40}, "multiple of 16"),
    ({"weights_floats": -16}, "packed weights"),
    ({"activation": 4}, "activation 4 unknown"),
    ({"window": 7}, "a 3x3 or 5x5 window"),
])
def test_a_malformed_step_is_refused_in_words(program_library, change, message):
    """(Without AVX2 and FMA, every fused step is refused, saying so.)"""
    if not {"avx2", "fma"} <= cpu_flags():
        message = "pointwise_depthwise needs AVX2 and FMA (avx2, fma), which this CPU lacks"
    c = change.get("channels", 32)
    x, w1, b1, wd, bd = _problem(1, 16, 8, 8, c)
    packed = pack_pointwise_depthwise(w1, b1, wd, bd)
    packed = packed[:packed.size + change.get("weights_floats", 0)]
    step = s.PointwiseDepthwise(0, 1, 2, 1, 1, 1, 2, change.get("activation", 2),
                                change.get("register_rows", 8), 1, 1, c,
                                window=change.get("window", 3))
    constants, offsets = s.pack_constants([packed])
    values = (s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, x.shape),
              s.ValueDecl(s.Role.CONST, offsets[0], packed.shape),
              s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, (1, c, 8, 8)))
    spec = s.ProgramSpec(int(RNG.integers(1, 2**40)), s.Layout.NHWC, values, (step,))
    call = program_runtime.DirectProgram(program_library, spec.encode(), [x, constants],
                                         (1, c, 8, 8))
    assert call() != 0
    assert message in program_runtime.last_error(program_library)


@needs_avx2_fma
def test_two_readers_of_a_value_share_its_channels_last_copy(program_library):
    """An image's convolution leaves its result in the blocked layout its jit kernel writes; two
    fused steps read it channels-last: one conversion, made for the first, serves both."""
    x = RNG.standard_normal((1, 3, 16, 16)).astype(np.float32)
    weight = (RNG.standard_normal((32, 3, 3, 3)) / 3).astype(np.float32)
    bias = RNG.standard_normal(32).astype(np.float32)
    image = conv_reference(x, weight, bias, (1, 1), (1, 1, 1, 1)).astype(np.float32)
    _, w1, b1, wd, bd = _problem(1, 32, 16, 16, 32)
    _, v1, c1, vd, cd = _problem(1, 32, 16, 16, 32)
    expected = (_reference(image, w1, b1, wd, bd, 1, 1, 2, 2)
                + _reference(image, v1, c1, vd, cd, 1, 1, 1, 0))
    constants = [weight, bias, pack_pointwise_depthwise(w1, b1, wd, bd),
                 pack_pointwise_depthwise(v1, c1, vd, cd)]
    packed, offsets = s.pack_constants(constants)
    dims = (1, 32, 16, 16)
    values = (s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, x.shape),
              *(s.ValueDecl(s.Role.CONST, o, a.shape) for o, a in zip(offsets, constants)),
              *(s.ValueDecl(s.Role.TEMP, -1, dims) for _ in range(3)),
              s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, dims))
    steps = (s.Conv(0, 1, 2, 5, 1, (1, 1), (1, 1, 1, 1)),
             s.PointwiseDepthwise(5, 3, 6, 1, 1, 1, 2, 2, 8, 2, 1, 32),
             s.PointwiseDepthwise(5, 4, 7, 1, 1, 1, 1, 0, 8, 2, 1, 32),
             s.Binary(6, 7, 8, s.Alg.ADD))
    words = s.ProgramSpec(int(RNG.integers(1, 2**40)), s.Layout.ANY, values, steps).encode()
    call = program_runtime.DirectProgram(program_library, words, [x, packed], dims)
    assert call() == 0
    close(call.output, expected)
    times = program_runtime.timings(program_library, np.asarray(words))
    conversions = [a.step for a in times.actions if a.label == "reorder"]
    assert 1 in conversions and 2 not in conversions, times.actions
