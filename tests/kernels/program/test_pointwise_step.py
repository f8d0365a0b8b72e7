"""The runtime's own 1x1 step (kernels/cpu/program/pointwise.h) against a float64 convolution:
register tiles and their tails, both thread splits (more output channels than pixels: panels;
fewer: tiles), stride 2, partial last panels, epilogues, every program layout (the step reads
and writes channels-last; other layouts are converted around it), and a malformed step
refused."""
from __future__ import annotations

import numpy as np
import pytest

from tuner.cpuinfo import flags as cpu_flags
from tuner.kernels.cpu.packing import pack_pointwise_nhwc_weight
from tuner.kernels.cpu.program import runtime
from tuner.kernels.cpu.program import spec as s

from tests.conftest import needs_avx2_fma
from tests.kernels.program.test_runtime import RNG, close, conv_reference, run

# (n, c, h, w, oc, stride, register_rows, register_vectors, tasks_per_thread)
SHAPES = [
    (1, 64, 7, 7, 256, 1, 14, 2, 1),     # late layer: panels split, 49 = 3 x 14 + 7
    (1, 48, 7, 7, 200, 1, 7, 4, 2),      # panels split, a partial last panel (200 = 3 x 64 + 8)
    (1, 32, 14, 14, 64, 1, 6, 2, 1),     # tiles split (196 pixels > 64 channels)
    (2, 24, 9, 11, 40, 1, 8, 1, 2),      # two images, 24 channels, oc tail of 8
    (1, 64, 14, 14, 128, 2, 14, 2, 1),   # stride 2: rows of 7 output pixels
    (2, 16, 9, 9, 96, 2, 4, 2, 1),       # stride 2, odd input, two images
    (1, 3, 5, 6, 17, 1, 5, 1, 1),        # 3 input channels, 17 outputs
]


def _step_and_constants(weight, bias, stride, params, residual=None, act=0):
    rows, vecs, tasks = params
    packed = pack_pointwise_nhwc_weight(weight, vecs)
    # value ids (tests.kernels.program.test_runtime.run): input, constants, then the output
    dst, residual_id = (3, None) if residual is None else (4, 3)
    step = s.Pointwise(0, 1, 2, dst, residual_id, stride, rows, vecs, tasks, act)
    constants = [packed, bias] + ([] if residual is None else [residual])
    return step, constants


def _problem(n, c, h, w, oc):
    x = RNG.standard_normal((n, c, h, w)).astype(np.float32)
    weight = (RNG.standard_normal((oc, c, 1, 1)) / np.sqrt(c)).astype(np.float32)
    bias = RNG.standard_normal(oc).astype(np.float32)
    return x, weight, bias


@needs_avx2_fma
@pytest.mark.parametrize("layout", [s.Layout.ANY, s.Layout.NHWC, s.Layout.BLOCKED])
@pytest.mark.parametrize("n,c,h,w,oc,stride,rows,vecs,tasks", SHAPES)
def test_matches_a_float64_convolution(program_library, layout, n, c, h, w, oc, stride, rows,
                                       vecs, tasks):
    x, weight, bias = _problem(n, c, h, w, oc)
    step, constants = _step_and_constants(weight, bias, stride, (rows, vecs, tasks))
    expected = conv_reference(x, weight, bias, (stride, stride), (0, 0, 0, 0))
    close(run(program_library, layout, [x], constants, [], expected.shape, [step]), expected)


@needs_avx2_fma
@pytest.mark.parametrize("act, oc", [(1, 64), (2, 40), (1, 200)])
def test_residual_then_activation(program_library, act, oc):
    """Whole panels add the residual in the register tile's store, a partial one in its own
    epilogue (oc 40 with 2 vectors, 200 with 4)."""
    x, weight, bias = _problem(1, 32, 7, 7, oc)
    residual = (3 * RNG.standard_normal((1, oc, 7, 7))).astype(np.float32)
    step, constants = _step_and_constants(weight, bias, 1, (7, 4 if oc == 200 else 2, 1),
                                          residual, act)
    expected = conv_reference(x, weight, bias, (1, 1), (0, 0, 0, 0)) + residual
    expected = np.maximum(expected, 0) if act == 1 else np.clip(expected, 0, 6)
    assert (expected == 0).any() and (act == 1 or (expected == 6).any())
    close(run(program_library, s.Layout.NHWC, [x], constants, [], expected.shape, [step]),
          expected)


@pytest.mark.parametrize("change, message", [
    ({"register_rows": 15}, "no register tile"),
    ({"register_rows": 8, "register_vectors": 4}, "no register tile"),
    ({"stride": 3}, "stride 1 or 2"),
    ({"weights_floats": -16}, "packed weights"),
])
def test_a_malformed_step_is_refused_in_words(program_library, change, message):
    """(Without AVX2 and FMA, every 1x1 step is refused, saying so.)"""
    if not {"avx2", "fma"} <= cpu_flags():
        message = "pointwise_nhwc needs AVX2 and FMA (avx2, fma), which this CPU lacks"
    fields = {"register_rows": 4, "register_vectors": 1, "stride": 1, **change}
    x, weight, _ = _problem(1, 16, 8, 8, 16)
    packed = pack_pointwise_nhwc_weight(weight, fields["register_vectors"])
    packed = packed.reshape(-1)[:packed.size + change.get("weights_floats", 0)]
    step = s.Pointwise(0, 1, 2, 3, None, fields["stride"], fields["register_rows"],
                       fields["register_vectors"], 1, 0)
    constants, offsets = s.pack_constants([packed, np.zeros(16, np.float32)])
    side = 8 if fields["stride"] == 1 else 3
    values = (s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, x.shape),
              s.ValueDecl(s.Role.CONST, offsets[0], packed.shape),
              s.ValueDecl(s.Role.CONST, offsets[1], (16,)),
              s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, (1, 16, side, side)))
    spec = s.ProgramSpec(int(RNG.integers(1, 2**40)), s.Layout.NHWC, values, (step,))
    call = runtime.DirectProgram(program_library, spec.encode(), [x, constants],
                                 (1, 16, side, side))
    assert call() != 0
    assert message in runtime.last_error(program_library)
