"""Fusing a 1x1 convolution into the 3x3 depthwise convolution after it (an inverted residual's
expansion and depthwise layers): where the depthwise workload's choice is the fused step, the
pair is one step and the network still matches MindSpore, with or without the 1x1 projection
after it (and its residual add), with ReLU6 or SiLU, a 3x3 or 5x5 window; a depthwise layer
without such a producer fuses with its projection alone, or without one runs on oneDNN; a
projection that is not the depthwise result's only reader stays a step of its own; the space's
default fuses the 3x3 pairs of maps of 28x28 and more (14x14 too with AVX-512), their
projections too."""
from __future__ import annotations

import numpy as np
import pytest
from mindspore import Tensor, nn, ops

from tests.conftest import needs_avx2_fma
from tests.fixtures.tiny_models import Calling
from tests.kernels.program.test_patterns import randomized
from tuner.config import KernelChoice, ProgramConfig, TuningConfig
from tuner.cpuinfo import flags as cpu_flags
from tuner.kernels.cpu.program.cell import ProgramCell
from tuner.kernels.cpu.program.pointwise_depthwise import POINTWISE_DEPTHWISE
from tuner.space.kernel_knobs import KernelKnobs

SHAPE = (2, 16, 14, 14)


class Swish(nn.Cell):
    def construct(self, x):
        return x * ops.sigmoid(x)


ACTIVATIONS = {"relu6": nn.ReLU6, "silu": nn.SiLU, "swish": Swish}


def _conv(cin, cout, k, stride=1, groups=1, act="relu6"):
    layers = [nn.Conv2d(cin, cout, k, stride, pad_mode="pad", padding=k // 2, group=groups),
              nn.BatchNorm2d(cout)]
    return nn.SequentialCell(layers + ([ACTIVATIONS[act]()] if act else []))


class InvertedResidual(nn.Cell):
    def __init__(self, cin, expanded, cout, stride, first=1, act="relu6", window=3):
        super().__init__()
        self.expand = _conv(cin, expanded, first, act=act)  # first == 3: not a 1x1 producer
        self.depthwise = _conv(expanded, expanded, window, stride, groups=expanded, act=act)
        self.project = _conv(expanded, cout, 1, act=None)
        self.residual = stride == 1 and cin == cout

    def construct(self, x):
        y = self.project(self.depthwise(self.expand(x)))
        return y + x if self.residual else y


class ProjectionAndAdd(nn.Cell):
    """The depthwise result is read by the projection and by an add."""

    def __init__(self):
        super().__init__()
        self.expand = _conv(16, 32, 1)
        self.depthwise = _conv(32, 32, 3, groups=32)
        self.project = _conv(32, 32, 1, act=None)

    def construct(self, x):
        d = self.depthwise(self.expand(x))
        return self.project(d) + d


class TwoReaders(nn.Cell):
    """The 1x1 convolution's result is read by the depthwise layer and by an add."""

    def __init__(self):
        super().__init__()
        self.expand = _conv(16, 32, 1)
        self.depthwise = _conv(32, 32, 3, groups=32)

    def construct(self, x):
        e = self.expand(x)
        return self.depthwise(e) + e


def _fused_everywhere(library, net, shape, projection=False):
    choices = tuple(KernelChoice(g.workload.key, POINTWISE_DEPTHWISE,
                                 (("projection", projection),))
                    for g in library.find_workloads(net, shape)
                    if POINTWISE_DEPTHWISE in library.kernel_names(g.workload))
    assert choices
    return TuningConfig(programs=ProgramConfig("network", "nhwc"), kernels=choices)


def _run(library, net, config, shape=SHAPE):
    net = randomized(net)
    x = Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    reference = Calling(net, auto_prefix=False)(x).asnumpy()
    program = library.apply(net, config, shape)
    assert isinstance(program, ProgramCell)
    out = Calling(program, auto_prefix=False)(x).asnumpy()
    error = float(np.abs(out - reference).max() / np.abs(reference).max())
    assert error < 1e-4
    return program


@needs_avx2_fma
@pytest.mark.parametrize("stride, projection, act", [
    (1, False, "relu6"), (2, False, "relu6"), (1, True, "relu6"), (2, True, "relu6"),
    (1, True, "silu"), (2, False, "swish")])
def test_a_fused_pair_is_one_step_and_matches_mindspore(library, stride, projection, act):
    """Block 0 with stride 1 adds its input to the projection's result; block 1 does not.
    SiLU comes as MindSpore's cell or as x * sigmoid(x)."""
    net = nn.SequentialCell([InvertedResidual(16, 64, 16, stride, act=act),
                             InvertedResidual(16, 48, 32, 1, act=act)])
    program = _run(library, net, _fused_everywhere(library, net, SHAPE, projection))
    fused = [step for step in program.steps if step.kernel == POINTWISE_DEPTHWISE]
    assert [step.layer for step in fused] == ["0.depthwise.0", "1.depthwise.0"]
    assert all(step.description.startswith("pointwise_depthwise") for step in fused)
    assert not any(step.layer.endswith("expand.0") for step in program.steps)
    projections = [step for step in program.steps if step.layer.endswith("project.0")]
    assert len(projections) == (0 if projection else 2)
    assert len(program.steps) == (2 if projection else 4)
    n, c, h, w = SHAPE
    hw = (h // stride) * (w // stride)  # every layer after block 0's depthwise one
    macs = h * w * c * 64 + hw * (64 * 9 + 64 * 16 + 16 * 48 + 48 * 9 + 48 * 32)
    assert sum(step.flops for step in program.steps) == 2 * n * macs  # fused steps count all


@needs_avx2_fma
def test_a_projection_with_another_reader_of_its_input_stays_a_step(library):
    net = ProjectionAndAdd()
    program = _run(library, net, _fused_everywhere(library, net, SHAPE, projection=True))
    assert [step.kernel for step in program.steps] == [POINTWISE_DEPTHWISE, "onednn"]
    assert program.steps[1].layer.startswith("project")


@needs_avx2_fma
@pytest.mark.parametrize("stride, projection", [(1, True), (2, False)])
def test_a_5x5_depthwise_layer_fuses_too(library, stride, projection):
    net = nn.SequentialCell([InvertedResidual(16, 64, 16, stride, act="silu", window=5),
                             InvertedResidual(16, 48, 32, 1, window=5)])
    program = _run(library, net, _fused_everywhere(library, net, SHAPE, projection))
    assert [step.kernel for step in program.steps].count(POINTWISE_DEPTHWISE) == 2
    assert len(program.steps) == (2 if projection else 4)


@needs_avx2_fma
@pytest.mark.parametrize("net", [InvertedResidual(16, 32, 16, 1, first=3), TwoReaders()],
                         ids=["3x3 producer", "two readers"])
def test_a_depthwise_layer_without_a_sole_1x1_producer_runs_on_onednn(library, net):
    program = _run(library, net, _fused_everywhere(library, net, SHAPE))
    depthwise = [step for step in program.steps if step.layer.startswith("depthwise")]
    assert [step.kernel for step in depthwise] == ["onednn"]


@needs_avx2_fma
@pytest.mark.parametrize("stride, outputs", [(1, 16), (2, 24)], ids=["residual", "stride 2"])
def test_without_a_1x1_producer_the_depthwise_layer_fuses_with_its_projection(library, stride,
                                                                               outputs):
    """An inverted residual of expansion ratio 1 (MobileNetV2's first block, after its stem)."""
    net = InvertedResidual(16, 32, outputs, stride, first=3)
    program = _run(library, net, _fused_everywhere(library, net, SHAPE, projection=True))
    assert [(step.layer, step.kernel) for step in program.steps] == [
        ("expand.0", "onednn"), ("depthwise.0", POINTWISE_DEPTHWISE)]
    n, c, h, w = SHAPE
    hw = (h // stride) * (w // stride)
    assert program.steps[1].flops == 2 * n * hw * (32 * 9 + 32 * outputs)


def test_the_default_fuses_on_maps_of_28x28_and_more_and_14x14_with_avx512(library):
    net = randomized(nn.SequentialCell([InvertedResidual(16, 32, 16, 1),
                                        InvertedResidual(16, 32, 16, 1, window=5),
                                        InvertedResidual(16, 32, 32, 2),
                                        InvertedResidual(32, 64, 32, 1),
                                        InvertedResidual(32, 64, 32, 2)]))
    shape = (2, 16, 28, 28)
    knobs = KernelKnobs(library.spaces, tuple(library.find_workloads(net, shape)))
    defaults = {(g.workload.height, g.workload.kernel[0]): knobs.default_kernel(g)
                for g in knobs.workloads if g.workload.kind == "depthwise"}
    fused = POINTWISE_DEPTHWISE if {"avx2", "fma"} <= cpu_flags() else "onednn"
    fused_14x14 = POINTWISE_DEPTHWISE if "avx512f" in cpu_flags() else "onednn"
    assert defaults == {(28, 3): fused, (28, 5): "onednn", (14, 3): fused_14x14}
    assert knobs.spaces[POINTWISE_DEPTHWISE].param("projection").default is True
