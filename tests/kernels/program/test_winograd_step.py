"""The runtime's own Winograd step (kernels/cpu/program/winograd.h) against a float64
convolution: tile sizes, register tiles, blocking and the thread split, odd shapes (channel and
tile tails, no padding), epilogues, every program layout (the step reads and writes
channels-last; other layouts are converted around it), and a malformed step refused."""
from __future__ import annotations

import numpy as np
import pytest

from tuner.kernels.cpu.packing import pack_winograd_nhwc_raw_weight, pack_winograd_nhwc_weight
from tuner.kernels.cpu.program import program_runtime
from tuner.kernels.cpu.program import spec as s

from tests.conftest import needs_avx2_fma
from tests.kernels.program.test_program_runtime import RNG, close, conv_reference, run
from tuner.cpuinfo import flags as cpu_flags

# (n, c, h, w, oc, pad, tile_size, register_rows, register_vectors, tile_block, oc_block,
#  tasks_per_thread)
SHAPES = [
    (1, 16, 9, 11, 20, 1, 4, 6, 4, 48, 128, 1),    # channel tails, partial edge tiles
    (2, 20, 7, 7, 33, 1, 2, 4, 2, 16, 64, 2),      # F(2x2): two images, oc tail
    (1, 3, 5, 6, 17, 0, 4, 8, 1, 16, 64, 4),       # no padding, 3 channels
    (3, 32, 14, 14, 48, 1, 2, 14, 1, 28, 64, 1),   # 14-row register tile, several tile blocks
    (1, 64, 12, 12, 64, 1, 4, 2, 4, 96, 512, 1),   # one tile block, oc blocks split by threads
    (1, 80, 7, 7, 96, 1, 4, 4, 2, 16, 64, 2),      # 4 tiles of 4x4 on 7x7 (a late layer)
]


def _step_and_constants(x, weight, bias, pad, params, residual=None, act=0, raw=False):
    m, rows, vecs, tile_block, oc_block, tasks = params
    packed = (pack_winograd_nhwc_raw_weight(weight, vecs) if raw
              else pack_winograd_nhwc_weight(weight, m, vecs))
    # value ids (tests.kernels.program.test_program_runtime.run): input, constants, then the output
    dst, residual_id = (3, None) if residual is None else (4, 3)
    step = s.Winograd(0, 1, 2, dst, residual_id, m, rows, vecs, tile_block, oc_block, tasks, pad,
                      pad, act, raw)
    constants = [packed, bias] + ([] if residual is None else [residual])
    return step, constants


@needs_avx2_fma
@pytest.mark.parametrize("layout, raw", [(s.Layout.ANY, False), (s.Layout.NHWC, False),
                                         (s.Layout.BLOCKED, False), (s.Layout.NHWC, True)])
@pytest.mark.parametrize("n,c,h,w,oc,pad,m,rows,vecs,tile_block,oc_block,tasks", SHAPES)
def test_matches_a_float64_convolution(program_library, layout, raw, n, c, h, w, oc, pad, m,
                                       rows, vecs, tile_block, oc_block, tasks):
    """Transformed weights in every layout; raw weights (transformed per call, in blocks of 64
    channels: the 80-channel case has two) in channels-last."""
    x = RNG.standard_normal((n, c, h, w)).astype(np.float32)
    weight = (RNG.standard_normal((oc, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    bias = RNG.standard_normal(oc).astype(np.float32)
    step, constants = _step_and_constants(x, weight, bias, pad,
                                          (m, rows, vecs, tile_block, oc_block, tasks), raw=raw)
    expected = conv_reference(x, weight, bias, (1, 1), (pad,) * 4)
    close(run(program_library, layout, [x], constants, [], expected.shape, [step]), expected)


@needs_avx2_fma
@pytest.mark.parametrize("act, raw", [(1, False), (2, True)])
def test_residual_then_activation(program_library, act, raw):
    x = RNG.standard_normal((2, 24, 10, 9)).astype(np.float32)
    weight = (RNG.standard_normal((40, 24, 3, 3)) / 6).astype(np.float32)
    bias = RNG.standard_normal(40).astype(np.float32)
    residual = (3 * RNG.standard_normal((2, 40, 10, 9))).astype(np.float32)
    step, constants = _step_and_constants(x, weight, bias, 1, (4, 6, 2, 16, 64, 1), residual, act,
                                          raw)
    expected = conv_reference(x, weight, bias, (1, 1), (1, 1, 1, 1)) + residual
    expected = np.maximum(expected, 0) if act == 1 else np.clip(expected, 0, 6)
    assert (expected == 0).any() and (act == 1 or (expected == 6).any())
    close(run(program_library, s.Layout.BLOCKED, [x], constants, [], expected.shape, [step]),
          expected)


@pytest.mark.parametrize("change, message", [
    ({"register_rows": 5}, "no register tile"),
    ({"tile_size": 3}, "tile size"),
    ({"weights_floats": -16}, "packed weights"),
])
def test_a_malformed_step_is_refused_in_words(program_library, change, message):
    """(Without AVX2 and FMA, every Winograd step is refused, saying so.)"""
    if not {"avx2", "fma"} <= cpu_flags():
        message = "winograd_nhwc needs AVX2 and FMA (avx2, fma), which this CPU lacks"
    x = RNG.standard_normal((1, 16, 8, 8)).astype(np.float32)
    weight = RNG.standard_normal((16, 16, 3, 3)).astype(np.float32)
    packed = pack_winograd_nhwc_weight(weight, 4, 1)
    packed = packed.reshape(-1)[:packed.size + change.get("weights_floats", 0)]
    fields = {"tile_size": 4, "register_rows": 4, **change}
    step = s.Winograd(0, 1, 2, 3, None, fields["tile_size"], fields["register_rows"], 1, 16, 64,
                      1, 1, 1, 0)
    constants, offsets = s.pack_constants([packed, np.zeros(16, np.float32)])
    values = (s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, x.shape),
              s.ValueDecl(s.Role.CONST, offsets[0], packed.shape),
              s.ValueDecl(s.Role.CONST, offsets[1], (16,)),
              s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, (1, 16, 8, 8)))
    spec = s.ProgramSpec(int(RNG.integers(1, 2**40)), s.Layout.NHWC, values, (step,))
    call = program_runtime.DirectProgram(program_library, spec.encode(), [x, constants],
                                         (1, 16, 8, 8))
    assert call() != 0
    assert message in program_runtime.last_error(program_library)
