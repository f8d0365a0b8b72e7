"""The program runtime on its own: every step kind and post-op against numpy, in every layout,
on odd shapes, called directly (no MindSpore graph in between)."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

from tests.conftest import needs_avx2_fma, needs_avx512
from tuner.kernels.cpu.program import program_runtime
from tuner.kernels.cpu.program import spec as s

RNG = np.random.default_rng(0)
LAYOUTS = list(s.Layout)


def _uid() -> int:
    return int(RNG.integers(1, 2**40))


def run(library, layout, inputs, constants, temps, output_dims, steps, kernels=()):
    """Values: the input, then the constants, then the temporaries, then the output."""
    (x,) = inputs
    packed, offsets = s.pack_constants(constants)
    values = [s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, x.shape)]
    values += [s.ValueDecl(s.Role.CONST, offset, a.shape) for offset, a in zip(offsets, constants)]
    values += [s.ValueDecl(s.Role.TEMP, -1, tuple(d)) for d in temps]
    values.append(s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, tuple(output_dims)))
    spec = s.ProgramSpec(_uid(), layout, tuple(values), tuple(steps), tuple(kernels))
    call = program_runtime.DirectProgram(library, spec.encode(), [x, packed], tuple(output_dims))
    assert call() == 0
    first = call.output.copy()
    assert call() == 0 and np.array_equal(first, call.output), "a second call differs"
    return call.output


def conv_reference(x, w, b, stride, pad, dilation=(1, 1), groups=1):
    """Direct convolution in float64; pad (top, left, bottom, right)."""
    n, c, h, width = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad[0], pad[2]), (pad[1], pad[3])))
    oh = (h + pad[0] + pad[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (width + pad[1] + pad[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg,
                           i * dilation[0]: i * dilation[0] + stride[0] * oh: stride[0],
                           j * dilation[1]: j * dilation[1] + stride[1] * ow: stride[1]]
                out[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", patch,
                                                         w[g * og:(g + 1) * og, :, i, j])
    return out + b.reshape(1, -1, 1, 1)


def close(actual, expected, tolerance=1e-5):
    scale = max(float(np.abs(expected).max()), 1e-6)
    assert actual.shape == expected.shape
    assert float(np.abs(actual - expected).max()) / scale <= tolerance


def test_runtime_is_available_and_its_abi_checked(program_library):
    assert program_runtime.unavailable_reason() is None
    check = ctypes.CDLL(str(program_library)).ProgramRuntimeCheck
    check.restype = ctypes.c_char_p
    assert check() == b""


CONVS = [  # (n, c, h, w, o, k, stride, pad (t, l, b, r), dilation, groups)
    (1, 3, 17, 19, 16, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1),        # first layer, odd sizes
    (2, 20, 9, 7, 24, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1),          # 1x1, not multiples of 16
    (1, 32, 8, 8, 32, 3, (1, 1), (2, 2, 2, 2), (2, 2), 1),          # dilation
    (1, 24, 10, 10, 24, 5, (2, 2), (2, 2, 2, 2), (1, 1), 24),       # depthwise 5x5 s2
    (1, 16, 9, 9, 32, 7, (1, 1), (3, 3, 3, 3), (1, 1), 16),         # depthwise 7x7, multiplier 2
    (2, 48, 7, 7, 64, 3, (1, 1), (1, 0, 1, 2), (1, 1), 8),          # grouped, uneven padding
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n,c,h,w,o,k,stride,pad,dilation,groups", CONVS)
def test_convolution_with_bias_and_relu6(program_library, layout, n, c, h, w, o, k, stride, pad,
                                         dilation, groups):
    x = RNG.standard_normal((n, c, h, w)).astype(np.float32)
    weight = (RNG.standard_normal((o, c // groups, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    bias = RNG.standard_normal(o).astype(np.float32)
    expected = np.clip(conv_reference(x, weight, bias, stride, pad, dilation, groups), 0, 6)
    step = s.Conv(0, 1, 2, 3, groups, stride, pad, dilation,
                  posts=(s.PostOp(s.Alg.CLIP, 0.0, 6.0),))
    close(run(program_library, layout, [x], [weight, bias], [], expected.shape, [step]), expected)


def _one_step_implementation(library, layout, x, constants, shape, step):
    """The implementation that runs ``step`` (values: the input, ``constants``, the output of
    ``shape``) as a program of its own, and the program's output."""
    packed, offsets = s.pack_constants(constants)
    values = (s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, x.shape),
              *(s.ValueDecl(s.Role.CONST, o, a.shape) for o, a in zip(offsets, constants)),
              s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, shape))
    words = s.ProgramSpec(_uid(), layout, values, (step,), ()).encode()
    call = program_runtime.DirectProgram(library, words, [x, packed], shape)
    assert call() == 0
    (action,) = [a for a in program_runtime.timings(library, np.asarray(words)).actions
                 if a.label == "step"]
    return action.implementation, call.output


def _conv_implementation(library, x, weight, bias, impl):
    """A 3x3 convolution of stride 2 (grouped as ``weight`` says) taking oneDNN's ``impl``-th
    offer: _one_step_implementation."""
    shape = (1, weight.shape[0], x.shape[2] // 2, x.shape[3] // 2)
    step = s.Conv(0, 1, 2, 3, x.shape[1] // weight.shape[1], (2, 2), (1, 1, 1, 1), impl=impl)
    return _one_step_implementation(library, s.Layout.NHWC, x, [weight, bias], shape, step)


@needs_avx2_fma
def test_a_steps_impl_does_not_depend_on_what_the_process_built_before(program_library):
    """oneDNN's primitive cache puts an implementation it holds first in its offers: the
    impl-th of a convolution built after a program of the same one took would otherwise be
    another than in a fresh process (RegNetX's grouped layer: brgemm for impl 2, and jit:sse41
    in a fresh process)."""
    x = RNG.standard_normal((1, 64, 24, 24)).astype(np.float32)
    weight = (RNG.standard_normal((64, 16, 3, 3)) / 12).astype(np.float32)
    bias = RNG.standard_normal(64).astype(np.float32)
    expected = conv_reference(x, weight, bias, (2, 2), (1, 1, 1, 1), groups=4)
    forwards = [_conv_implementation(program_library, x, weight, bias, i) for i in (0, 1, 2)]
    backwards = [_conv_implementation(program_library, x, weight, bias, i) for i in (2, 1, 0)]
    for _, output in forwards + backwards:
        close(output, expected)
    names = [name for name, _ in forwards]
    assert names == [name for name, _ in reversed(backwards)]
    assert names[0] != names[1], names


def test_a_steps_later_impl_is_never_onednns_reference_one(program_library):
    """A depthwise convolution's second and third offers on AVX2 CPUs are oneDNN's reference
    implementation (ref:any, a hundred times slower): the last offer before it is taken."""
    x = RNG.standard_normal((1, 32, 16, 16)).astype(np.float32)
    weight = (RNG.standard_normal((32, 1, 3, 3)) / 3).astype(np.float32)
    bias = RNG.standard_normal(32).astype(np.float32)
    expected = conv_reference(x, weight, bias, (2, 2), (1, 1, 1, 1), groups=32)
    for impl in (1, 2):
        name, output = _conv_implementation(program_library, x, weight, bias, impl)
        assert not name.startswith("ref"), name
        close(output, expected)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_image_is_convolved_in_its_own_layout(program_library, layout):
    """A first layer's 3-channel input is read as it is: the only layout conversion left is
    the result's, to the plain output."""
    x = RNG.standard_normal((1, 3, 32, 32)).astype(np.float32)
    weight = (RNG.standard_normal((32, 3, 7, 7)) * 0.1).astype(np.float32)
    bias = RNG.standard_normal(32).astype(np.float32)
    expected = np.maximum(conv_reference(x, weight, bias, (2, 2), (3, 3, 3, 3)), 0)
    packed, offsets = s.pack_constants([weight, bias])
    values = (s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, x.shape),
              *(s.ValueDecl(s.Role.CONST, o, a.shape) for o, a in zip(offsets, [weight, bias])),
              s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, expected.shape))
    step = s.Conv(0, 1, 2, 3, 1, (2, 2), (3, 3, 3, 3), posts=(s.PostOp(s.Alg.RELU),))
    words = s.ProgramSpec(_uid(), layout, values, (step,), ()).encode()
    call = program_runtime.DirectProgram(program_library, words, [x, packed], expected.shape)
    assert call() == 0
    close(call.output, expected)
    times = program_runtime.timings(program_library, np.asarray(words))
    assert sum(action.label == "reorder" for action in times.actions) <= 1, times.actions


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_binary_step_avoids_onednns_reference_implementation(program_library, layout):
    """An image's convolution leaves its result in the layout its jit implementation writes
    (channels in blocks of 8 on AVX2); a per-channel multiply with an add and ReLU after it (a
    BatchNorm before the next convolution, as DenseNet has) has only oneDNN's reference
    implementation there, 40-70x slower, and reads its operand channels-last instead."""
    x = RNG.standard_normal((1, 3, 32, 32)).astype(np.float32)
    weight = (RNG.standard_normal((32, 3, 7, 7)) * 0.1).astype(np.float32)
    bias = RNG.standard_normal(32).astype(np.float32)
    scale = RNG.uniform(0.5, 1.5, (1, 32, 1, 1)).astype(np.float32)
    shift = RNG.standard_normal((1, 32, 1, 1)).astype(np.float32)
    features = conv_reference(x, weight, bias, (2, 2), (3, 3, 3, 3))
    expected = np.maximum(features * scale + shift, 0)
    steps = [s.Conv(0, 1, 2, 5, 1, (2, 2), (3, 3, 3, 3)),
             s.Binary(5, 3, 6, s.Alg.MUL, posts=(s.PostOp(s.Alg.ADD, operand=4),
                                                   s.PostOp(s.Alg.RELU)))]
    packed, offsets = s.pack_constants([weight, bias, scale, shift])
    values = (s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, x.shape),
              *(s.ValueDecl(s.Role.CONST, o, a.shape)
                for o, a in zip(offsets, [weight, bias, scale, shift])),
              s.ValueDecl(s.Role.TEMP, -1, expected.shape),
              s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, expected.shape))
    words = s.ProgramSpec(_uid(), layout, values, tuple(steps), ()).encode()
    call = program_runtime.DirectProgram(program_library, words, [x, packed], expected.shape)
    assert call() == 0
    close(call.output, expected)
    times = program_runtime.timings(program_library, np.asarray(words))
    binary = [action for action in times.actions if action.step == 1 and action.label == "step"]
    assert binary and not binary[0].implementation.startswith("ref"), times.actions


@pytest.mark.parametrize("layout", LAYOUTS)
def test_residual_add_then_relu_as_post_ops_across_steps(program_library, layout):
    x = RNG.standard_normal((1, 16, 6, 6)).astype(np.float32)
    w1 = (RNG.standard_normal((16, 16, 3, 3)) * 0.1).astype(np.float32)
    w2 = (RNG.standard_normal((16, 16, 1, 1)) * 0.1).astype(np.float32)
    zeros = np.zeros(16, np.float32)
    middle = np.maximum(conv_reference(x, w1, zeros, (1, 1), (1, 1, 1, 1)), 0)
    expected = np.maximum(conv_reference(middle.astype(np.float32), w2, zeros, (1, 1),
                                         (0, 0, 0, 0)) + x, 0)
    steps = [s.Conv(0, 1, 3, 4, 1, (1, 1), (1, 1, 1, 1), posts=(s.PostOp(s.Alg.RELU),)),
             s.Conv(4, 2, 3, 5, 1, (1, 1), (0, 0, 0, 0),
                    posts=(s.PostOp(s.Alg.ADD, operand=0), s.PostOp(s.Alg.RELU)))]
    close(run(program_library, layout, [x], [w1, w2, zeros], [(1, 16, 6, 6)], (1, 16, 6, 6),
              steps), expected)



@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_call_reads_and_writes_the_buffers_it_is_given(program_library, layout):
    """The runtime binds the input, constants and output once and rebinds only when a call
    passes other buffers: two callers of one program, alternating, each get their own result."""
    step = s.Conv(0, 1, 2, 3, 1, (1, 1), (1, 1, 1, 1), posts=(s.PostOp(s.Alg.RELU),))
    values = (s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, (1, 16, 6, 6)),
              s.ValueDecl(s.Role.CONST, 0, (16, 16, 3, 3)),
              s.ValueDecl(s.Role.CONST, 16 * 16 * 9, (16,)),
              s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, (1, 16, 6, 6)))
    words = s.ProgramSpec(_uid(), layout, values, (step,), ()).encode()
    callers = []
    for _ in range(2):
        x = RNG.standard_normal((1, 16, 6, 6)).astype(np.float32)
        weight = (RNG.standard_normal((16, 16, 3, 3)) * 0.1).astype(np.float32)
        bias = RNG.standard_normal(16).astype(np.float32)
        packed, _ = s.pack_constants([weight, bias])
        expected = np.maximum(conv_reference(x, weight, bias, (1, 1), (1, 1, 1, 1)), 0)
        callers.append((program_runtime.DirectProgram(program_library, words, [x, packed],
                                                      (1, 16, 6, 6)), expected))
    for call, expected in callers + callers:
        call.output[:] = np.nan
        assert call() == 0
        close(call.output, expected)

ELTWISE = {
    s.Alg.LOGISTIC: (0.0, 0.0, lambda v: 1 / (1 + np.exp(-v))),
    s.Alg.SWISH: (1.0, 0.0, lambda v: v / (1 + np.exp(-v))),
    s.Alg.HARDSWISH: (1 / 6, 0.5, lambda v: v * np.clip(v / 6 + 0.5, 0, 1)),
    s.Alg.HARDSIGMOID: (1 / 6, 0.5, lambda v: np.clip(v / 6 + 0.5, 0, 1)),
    s.Alg.GELU_TANH: (0.0, 0.0, lambda v: 0.5 * v * (1 + np.tanh(0.7978845608 * (v + 0.044715 * v**3)))),
    s.Alg.TANH: (0.0, 0.0, np.tanh),
    s.Alg.LINEAR: (0.5, -1.0, lambda v: 0.5 * v - 1.0),
}


@pytest.mark.parametrize("alg", list(ELTWISE))
def test_eltwise_functions_standalone_and_fused(program_library, alg):
    alpha, beta, function = ELTWISE[alg]
    x = RNG.standard_normal((2, 5, 3, 3)).astype(np.float32) * 3
    close(run(program_library, s.Layout.ANY, [x], [], [], x.shape,
              [s.Eltwise(0, 1, alg, alpha, beta)]), function(x.astype(np.float64)))
    weight = (RNG.standard_normal((5, 5, 1, 1)) * 0.3).astype(np.float32)
    bias = np.zeros(5, np.float32)
    conv = conv_reference(x, weight, bias, (1, 1), (0, 0, 0, 0))
    close(run(program_library, s.Layout.BLOCKED, [x], [weight, bias], [], x.shape,
              [s.Conv(0, 1, 2, 3, 1, (1, 1), (0, 0, 0, 0),
                      posts=(s.PostOp(alg, alpha, beta),))]), function(conv), 1e-5)


def test_gelu_erf(program_library):
    from math import erf

    x = RNG.standard_normal((4, 33)).astype(np.float32)
    expected = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2))))(x.astype(np.float64))
    close(run(program_library, s.Layout.ANY, [x], [], [], x.shape,
              [s.Eltwise(0, 1, s.Alg.GELU_ERF)]), expected)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("alg,kernel,stride,pad", [
    (s.Alg.POOL_MAX, (3, 3), (2, 2), (1, 1, 1, 1)),
    (s.Alg.POOL_AVG_EXCLUDE, (2, 2), (2, 2), (0, 0, 0, 0)),
    (s.Alg.POOL_AVG_INCLUDE, (3, 3), (1, 1), (1, 1, 1, 1)),
    (s.Alg.POOL_AVG_EXCLUDE, (7, 5), (1, 1), (0, 0, 0, 0)),   # global average over 7x5
])
def test_pooling_after_a_convolution(program_library, layout, alg, kernel, stride, pad):
    x = RNG.standard_normal((2, 16, 7, 5)).astype(np.float32)
    weight = (RNG.standard_normal((16, 16, 1, 1)) * 0.3).astype(np.float32)
    bias = np.zeros(16, np.float32)
    conv = conv_reference(x, weight, bias, (1, 1), (0, 0, 0, 0))
    fill = -np.inf if alg == s.Alg.POOL_MAX else 0.0
    padded = np.pad(conv, ((0, 0), (0, 0), (pad[0], pad[2]), (pad[1], pad[3])),
                    constant_values=fill)
    ones = np.pad(np.ones_like(conv), ((0, 0), (0, 0), (pad[0], pad[2]), (pad[1], pad[3])))
    oh = (padded.shape[2] - kernel[0]) // stride[0] + 1
    ow = (padded.shape[3] - kernel[1]) // stride[1] + 1
    expected = np.zeros((2, 16, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = padded[:, :, i * stride[0]:i * stride[0] + kernel[0],
                            j * stride[1]:j * stride[1] + kernel[1]]
            if alg == s.Alg.POOL_MAX:
                expected[:, :, i, j] = window.max(axis=(2, 3))
            elif alg == s.Alg.POOL_AVG_INCLUDE:
                expected[:, :, i, j] = window.sum(axis=(2, 3)) / (kernel[0] * kernel[1])
            else:
                count = ones[:, :, i * stride[0]:i * stride[0] + kernel[0],
                             j * stride[1]:j * stride[1] + kernel[1]].sum(axis=(2, 3))
                expected[:, :, i, j] = window.sum(axis=(2, 3)) / count
    steps = [s.Conv(0, 1, 2, 3, 1, (1, 1), (0, 0, 0, 0)),
             s.Pool(3, 4, alg, kernel, stride, pad)]
    close(run(program_library, layout, [x], [weight, bias], [conv.shape], expected.shape, steps),
          expected)


@pytest.mark.parametrize("operand_shape", [(2, 16, 5, 5), (2, 16, 1, 1), (1, 16, 1, 1), (1, 1, 1, 1)])
def test_binary_broadcasts_its_second_operand(program_library, operand_shape):
    x = RNG.standard_normal((2, 16, 5, 5)).astype(np.float32)
    gate = RNG.standard_normal(operand_shape).astype(np.float32)
    shift = RNG.standard_normal((1, 16, 1, 1)).astype(np.float32)
    expected = np.maximum(x * gate + shift, 0)
    steps = [s.Binary(0, 1, 3, s.Alg.MUL, posts=(s.PostOp(s.Alg.ADD, operand=2),
                                                 s.PostOp(s.Alg.RELU)))]
    close(run(program_library, s.Layout.ANY, [x], [gate, shift], [], x.shape, steps), expected)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_concat_of_convolutions_and_the_input(program_library, layout):
    x = RNG.standard_normal((1, 16, 6, 6)).astype(np.float32)
    weight = (RNG.standard_normal((32, 16, 3, 3)) * 0.1).astype(np.float32)
    bias = RNG.standard_normal(32).astype(np.float32)
    conv = conv_reference(x, weight, bias, (1, 1), (1, 1, 1, 1))
    expected = np.concatenate([x, conv, x], axis=1)
    steps = [s.Conv(0, 1, 2, 3, 1, (1, 1), (1, 1, 1, 1)), s.Concat((0, 3, 0), 4, 1)]
    close(run(program_library, layout, [x], [weight, bias], [(1, 32, 6, 6)], (1, 64, 6, 6),
              steps), expected)


def test_dense_layer_and_attention_products(program_library):
    x = RNG.standard_normal((6, 20)).astype(np.float32)
    weight = RNG.standard_normal((20, 12)).astype(np.float32)
    bias = RNG.standard_normal((1, 12)).astype(np.float32)
    close(run(program_library, s.Layout.ANY, [x], [weight, bias], [], (6, 12),
              [s.MatMul(0, 1, 2, 3, posts=(s.PostOp(s.Alg.GELU_TANH),))]),
          ELTWISE[s.Alg.GELU_TANH][2](x.astype(np.float64) @ weight + bias))
    q = RNG.standard_normal((2, 3, 5, 8)).astype(np.float32)
    expected = q.astype(np.float64) @ np.swapaxes(q, -1, -2)
    close(run(program_library, s.Layout.ANY, [q], [], [], (2, 3, 5, 5),
              [s.MatMul(0, 0, None, 1, transpose_weights=True)]), expected)


def _dense_layer_implementation(library, x, weight, bias, impl):
    """A product by constant weights (+ bias, then GELU) taking ``impl``:
    _one_step_implementation."""
    step = s.MatMul(0, 1, 2, 3, impl=impl, posts=(s.PostOp(s.Alg.GELU_TANH),))
    return _one_step_implementation(library, s.Layout.ANY, x, [weight, bias],
                                    (x.shape[0], weight.shape[1]), step)


@needs_avx2_fma
def test_a_products_impl_takes_onednns_matrix_product(program_library):
    """impl 0: a dense layer's product as brgemm's 1x1 convolution (where oneDNN's matrix product
    leaves brgemm); impl 1: oneDNN's matrix product itself, the same whatever the process built
    before (the knob the search turns on every product); later ones never its reference
    implementation (on AVX2 its third offer)."""
    x = RNG.standard_normal((50, 96)).astype(np.float32)
    weight = RNG.standard_normal((96, 64)).astype(np.float32)
    bias = RNG.standard_normal((1, 64)).astype(np.float32)
    expected = ELTWISE[s.Alg.GELU_TANH][2](x.astype(np.float64) @ weight + bias)
    forwards = [_dense_layer_implementation(program_library, x, weight, bias, i) for i in (0, 1)]
    backwards = [_dense_layer_implementation(program_library, x, weight, bias, i) for i in (1, 0)]
    for _, output in forwards + backwards:
        close(output, expected)
    names = [name for name, _ in forwards]
    assert names == [name for name, _ in reversed(backwards)]
    assert names[0].startswith("brgconv") and not names[1].startswith("brgconv"), names
    later = [_dense_layer_implementation(program_library, x, weight, bias, i)[0] for i in (2, 3)]
    assert not any(name.startswith("ref") for name in later), later


@needs_avx512
@pytest.mark.parametrize("rows, with_bias", [(50, True), (1, False), (7, True)])
def test_dense_layers_oneDNN_gives_to_gemm_run_as_1x1_convolutions(program_library, rows,
                                                                     with_bias):
    """Products of a few rows (ViT's 50 tokens, a classifier's one) by constant weights: oneDNN's
    matrix product leaves brgemm for gemm there; the rows as a channels-last image's pixels get
    brgemm's 1x1 convolution. Two layers in a row: the input, a temporary and the output are
    each read or written through the convolution's view of them."""
    x = RNG.standard_normal((rows, 96)).astype(np.float32)
    w1 = RNG.standard_normal((96, 64)).astype(np.float32)
    w2 = RNG.standard_normal((64, 40)).astype(np.float32)
    b1, b2 = (RNG.standard_normal((1, n)).astype(np.float32) for n in (64, 40))
    hidden = ELTWISE[s.Alg.GELU_TANH][2](x.astype(np.float64) @ w1 + (b1 if with_bias else 0))
    expected = hidden @ w2 + (b2 if with_bias else 0)
    constants = [w1, w2] + ([b1, b2] if with_bias else [])
    bias1, bias2 = (3, 4) if with_bias else (None, None)
    temp, out = len(constants) + 1, len(constants) + 2
    steps = [s.MatMul(0, 1, bias1, temp, posts=(s.PostOp(s.Alg.GELU_TANH),)),
             s.MatMul(temp, 2, bias2, out)]
    packed, offsets = s.pack_constants(constants)
    values = (s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, x.shape),
              *(s.ValueDecl(s.Role.CONST, o, a.shape) for o, a in zip(offsets, constants)),
              s.ValueDecl(s.Role.TEMP, -1, (rows, 64)),
              s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, expected.shape))
    words = s.ProgramSpec(_uid(), s.Layout.ANY, values, tuple(steps), ()).encode()
    call = program_runtime.DirectProgram(program_library, words, [x, packed], expected.shape)
    assert call() == 0
    close(call.output, expected)
    times = program_runtime.timings(program_library, np.asarray(words))
    assert [a.implementation.split(":")[0] for a in times.actions] == ["brgconv_1x1"] * 2, \
        times.actions


def test_layer_norm_softmax_transpose_reshape_slice(program_library):
    x = RNG.standard_normal((2, 4, 3, 6)).astype(np.float32)
    scale = RNG.standard_normal(6).astype(np.float32)
    shift = RNG.standard_normal(6).astype(np.float32)
    x64 = x.astype(np.float64)
    normed = (x64 - x64.mean(-1, keepdims=True)) / np.sqrt(x64.var(-1, keepdims=True) + 1e-6)
    normed = normed * scale + shift
    close(run(program_library, s.Layout.ANY, [x], [scale, shift], [], x.shape,
              [s.LayerNorm(0, 1, 2, 3, 1e-6)]), normed, 1e-4)
    e = np.exp(x64 - x64.max(2, keepdims=True))
    close(run(program_library, s.Layout.ANY, [x], [], [], x.shape, [s.Softmax(0, 1, 2)]),
          e / e.sum(2, keepdims=True))
    close(run(program_library, s.Layout.ANY, [x], [], [], (2, 3, 6, 4),
              [s.Transpose(0, 1, (0, 2, 3, 1))]), np.transpose(x, (0, 2, 3, 1)))
    close(run(program_library, s.Layout.ANY, [x], [], [], (8, 18), [s.Reshape(0, 1)]),
          x.reshape(8, 18))
    close(run(program_library, s.Layout.ANY, [x], [], [], (2, 2, 3, 6),
              [s.Slice(0, 1, (0, 1, 0, 0))]), x[:, 1:3])
    close(run(program_library, s.Layout.ANY, [x], [], [(2, 1, 3, 6)], (2, 3, 6),
              [s.Slice(0, 1, (0, 2, 0, 0)), s.Reshape(1, 2)]), x[:, 2])


def test_reduction_mean(program_library):
    x = RNG.standard_normal((2, 5, 7)).astype(np.float32)
    close(run(program_library, s.Layout.ANY, [x], [], [], (2, 1, 7), [s.Reduce(0, 1)]),
          x.astype(np.float64).mean(axis=1, keepdims=True))


@needs_avx512
def test_hand_written_kernel_as_an_external_step(program_library, library):
    from tuner.kernels.cpu.packing import pack_weight
    from tuner.kernels.cpu.library import ENTRY_POINTS, weight_layout

    built = library.build("conv2d_dense", {})
    assert built.ok, built.error
    layout = weight_layout("conv2d_dense", built.library)
    x = RNG.standard_normal((1, 16, 9, 9)).astype(np.float32)
    weight = (RNG.standard_normal((24, 16, 3, 3)) * 0.1).astype(np.float32)
    bias = RNG.standard_normal(24).astype(np.float32)
    # the residual is computed by a oneDNN step (blocked) and read by the kernel as NCHW
    steps = [s.Conv(0, 3, 4, 5, 1, (1, 1), (0, 0, 0, 0)),
             s.External(0, 1, 2, 6, 5, 0, (3, 3), (1, 1), (1, 1, 1, 1), 1)]
    lift = (RNG.standard_normal((24, 16, 1, 1)) * 0.3).astype(np.float32)
    out = run(program_library, s.Layout.BLOCKED, [x],
              [pack_weight(layout, weight), bias, lift, np.zeros(24, np.float32)],
              [(1, 24, 9, 9)], (1, 24, 9, 9),
              steps, kernels=(f"{built.library}:{ENTRY_POINTS['conv2d_dense']}",))
    residual_in = conv_reference(x, lift, np.zeros(24, np.float32), (1, 1), (0, 0, 0, 0))
    expected = np.maximum(conv_reference(x, weight, bias, (1, 1), (1, 1, 1, 1)) + residual_in, 0)
    close(out, expected)


def test_a_malformed_spec_is_an_error_not_a_crash(program_library):
    bad = program_runtime.DirectProgram(program_library, np.array([1, 2, 3], np.int64),
                                        [np.zeros(4, np.float32)], (4,))
    assert bad() != 0
