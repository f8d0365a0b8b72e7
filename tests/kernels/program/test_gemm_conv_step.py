"""The runtime's own GEMM convolution step (kernels/cpu/program/gemm_conv.h) against a float64
convolution: 1x1 layers read in place and windows gathered (3x3, 5x3, strides, padding, 'same'
padding on odd sizes), register tiles and their tails, both thread splits (more output channels
than pixels: panels; fewer: tiles), partial last panels, epilogues, every program layout (the
step reads and writes channels-last; other layouts are converted around it), and a malformed
step refused."""
from __future__ import annotations

import numpy as np
import pytest

from tuner.cpuinfo import flags as cpu_flags
from tuner.kernels.cpu.packing import pack_gemm_conv_weight
from tuner.kernels.cpu.program import program_runtime
from tuner.kernels.cpu.program import spec as s

from tests.conftest import needs_avx2_fma
from tests.kernels.program.test_program_runtime import RNG, close, conv_reference, run

# (n, c, h, w, oc, window, stride, padding (top, left, bottom, right), register_rows,
#  register_vectors, tasks_per_thread)
SHAPES = [
    (1, 64, 7, 7, 256, (1, 1), 1, (0, 0, 0, 0), 14, 2, 1),  # panels split, 49 = 3 x 14 + 7
    (1, 48, 7, 7, 200, (1, 1), 1, (0, 0, 0, 0), 7, 4, 2),   # partial last panel (3 x 64 + 8)
    (1, 40, 7, 7, 96, (1, 1), 1, (0, 0, 0, 0), 14, 2, 1),   # 3 panels: one's tiles shared
    (1, 16, 4, 4, 24, (1, 1), 1, (0, 0, 0, 0), 6, 2, 2),    # one partial panel, tiles shared
    (1, 32, 14, 14, 64, (1, 1), 1, (0, 0, 0, 0), 6, 2, 1),  # tiles split (196 pixels > 64)
    (2, 24, 9, 11, 40, (1, 1), 1, (0, 0, 0, 0), 8, 1, 2),   # two images, oc tail of 8
    (1, 64, 14, 14, 128, (1, 1), 2, (0, 0, 0, 0), 14, 2, 1),  # stride 2, gathered
    (2, 16, 9, 9, 96, (1, 1), 2, (0, 0, 0, 0), 4, 2, 1),    # stride 2, odd input, two images
    (1, 3, 5, 6, 17, (1, 1), 1, (0, 0, 0, 0), 5, 1, 1),     # 3 input channels, 17 outputs
    (1, 32, 7, 7, 64, (3, 3), 1, (1, 1, 1, 1), 14, 2, 1),   # a late 3x3 layer, panels split
    (2, 16, 10, 9, 48, (3, 3), 2, (1, 1, 1, 1), 7, 1, 1),   # 3x3 stride 2, tiles split
    (1, 8, 9, 9, 32, (3, 3), 2, (0, 0, 1, 1), 4, 2, 2),     # 'same' on an odd size, stride 2
    (1, 5, 6, 8, 20, (5, 3), 1, (2, 0, 2, 0), 6, 1, 1),     # 5x3 window, padding on rows only
]


def _step_and_constants(weight, bias, stride, padding, params, residual=None, act=0,
                        depth_block=0):
    rows, vecs, tasks = params
    packed = pack_gemm_conv_weight(weight, vecs)
    # value ids (tests.kernels.program.test_program_runtime.run): input, constants, then the output
    dst, residual_id = (3, None) if residual is None else (4, 3)
    step = s.GemmConv(0, 1, 2, dst, residual_id, weight.shape[2:], stride, padding[0],
                      padding[1], rows, vecs, tasks, act, depth_block)
    constants = [packed, bias] + ([] if residual is None else [residual])
    return step, constants


def _problem(n, c, h, w, oc, window=(1, 1)):
    x = RNG.standard_normal((n, c, h, w)).astype(np.float32)
    weight = (RNG.standard_normal((oc, c, *window)) / np.sqrt(c * window[0] * window[1]))
    bias = RNG.standard_normal(oc).astype(np.float32)
    return x, weight.astype(np.float32), bias


@needs_avx2_fma
@pytest.mark.parametrize("layout", [s.Layout.ANY, s.Layout.NHWC, s.Layout.BLOCKED])
@pytest.mark.parametrize("n,c,h,w,oc,window,stride,padding,rows,vecs,tasks", SHAPES)
def test_matches_a_float64_convolution(program_library, layout, n, c, h, w, oc, window, stride,
                                       padding, rows, vecs, tasks):
    x, weight, bias = _problem(n, c, h, w, oc, window)
    step, constants = _step_and_constants(weight, bias, stride, padding, (rows, vecs, tasks))
    expected = conv_reference(x, weight, bias, (stride, stride), padding)
    close(run(program_library, layout, [x], constants, [], expected.shape, [step]), expected)


@needs_avx2_fma
@pytest.mark.parametrize("act, oc", [(1, 64), (2, 40), (1, 200)])
def test_residual_then_activation(program_library, act, oc):
    """Whole panels add the residual in the register tile's store, a partial one in its own
    epilogue (oc 40 with 2 vectors, 200 with 4)."""
    x, weight, bias = _problem(1, 32, 7, 7, oc)
    residual = (3 * RNG.standard_normal((1, oc, 7, 7))).astype(np.float32)
    step, constants = _step_and_constants(weight, bias, 1, (0,) * 4,
                                          (7, 4 if oc == 200 else 2, 1), residual, act)
    expected = conv_reference(x, weight, bias, (1, 1), (0, 0, 0, 0)) + residual
    expected = np.maximum(expected, 0) if act == 1 else np.clip(expected, 0, 6)
    assert (expected == 0).any() and (act == 1 or (expected == 6).any())
    close(run(program_library, s.Layout.NHWC, [x], constants, [], expected.shape, [step]),
          expected)


@needs_avx2_fma
@pytest.mark.parametrize("oc, depth_block, residual", [(64, 40, False), (200, 24, True),
                                                       (40, 288, True)])
def test_depth_blocks_accumulate_and_the_epilogue_comes_last(program_library, oc, depth_block,
                                                             residual):
    """A 3x3 layer of 32 channels (288 rows a panel) in passes of 40 and 24 rows (the last one
    shorter), or in one (288): the bias first, the residual and ReLU once, after the last pass;
    whole and partial panels (200 = 3 x 64 + 8 with 4 vectors, 40 with 2)."""
    x, weight, bias = _problem(1, 32, 7, 7, oc, (3, 3))
    extra = (3 * RNG.standard_normal((1, oc, 7, 7))).astype(np.float32) if residual else None
    step, constants = _step_and_constants(weight, bias, 1, (1, 1, 1, 1),
                                          (7, 4 if oc == 200 else 2, 1), extra, 1, depth_block)
    expected = conv_reference(x, weight, bias, (1, 1), (1, 1, 1, 1))
    expected = np.maximum(expected + (0 if extra is None else extra), 0)
    close(run(program_library, s.Layout.NHWC, [x], constants, [], expected.shape, [step]),
          expected)


@pytest.mark.parametrize("change, message", [
    ({"register_rows": 15}, "no register tile"),
    ({"register_rows": 8, "register_vectors": 4}, "no register tile"),
    ({"stride": 0}, "positive stride"),
    ({"pad_top": 1}, "padding smaller than the window"),
    ({"weights_floats": -16}, "packed weights"),
])
def test_a_malformed_step_is_refused_in_words(program_library, change, message):
    """(Without AVX2 and FMA, every 1x1 step is refused, saying so.)"""
    if not {"avx2", "fma"} <= cpu_flags():
        message = "gemm_conv_nhwc needs AVX2 and FMA (avx2, fma), which this CPU lacks"
    fields = {"register_rows": 4, "register_vectors": 1, "stride": 1, "pad_top": 0, **change}
    x, weight, _ = _problem(1, 16, 8, 8, 16)
    packed = pack_gemm_conv_weight(weight, fields["register_vectors"])
    packed = packed.reshape(-1)[:packed.size + change.get("weights_floats", 0)]
    step = s.GemmConv(0, 1, 2, 3, None, (1, 1), fields["stride"], fields["pad_top"], 0,
                      fields["register_rows"], fields["register_vectors"], 1, 0)
    constants, offsets = s.pack_constants([packed, np.zeros(16, np.float32)])
    side = 8
    values = (s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, x.shape),
              s.ValueDecl(s.Role.CONST, offsets[0], packed.shape),
              s.ValueDecl(s.Role.CONST, offsets[1], (16,)),
              s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, (1, 16, side, side)))
    spec = s.ProgramSpec(int(RNG.integers(1, 2**40)), s.Layout.NHWC, values, (step,))
    call = program_runtime.DirectProgram(program_library, spec.encode(), [x, constants],
                                         (1, 16, side, side))
    assert call() != 0
    assert message in program_runtime.last_error(program_library)
