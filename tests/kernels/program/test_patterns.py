"""What the programs make of the patterns networks are built from: each tiny network below runs
as programs, matches MindSpore's own output, and its explanation says what was fused."""
from __future__ import annotations

import numpy as np
import pytest
from mindspore import Tensor, nn, ops

from tests.fixtures.tiny_models import Calling
from tuner.config import ProgramConfig, TuningConfig
from tuner.kernels.cpu.program.cell import ProgramCell

RNG = np.random.default_rng(0)
NETWORK = TuningConfig(programs=ProgramConfig("network"))


def randomized(net: nn.Cell) -> nn.Cell:
    """Random weights and BatchNorm statistics, as a trained network has."""
    for name, param in net.parameters_and_names():
        if name.endswith(("moving_variance", "gamma")):
            value = RNG.uniform(0.5, 2.0, param.shape)
        elif name.endswith(("moving_mean", "beta")):
            value = RNG.normal(0.0, 0.2, param.shape)
        else:
            value = RNG.normal(0.0, 0.3, param.shape)
        param.set_data(Tensor(value.astype(np.float32)))
    net.set_train(False)
    return net


def check(library, net, shape, config=NETWORK, tolerance=1e-4):
    """(explanation, number of program cells) after checking the tuned output."""
    net = randomized(net)
    x = Tensor(RNG.standard_normal(shape).astype(np.float32))
    reference = Calling(net, auto_prefix=False)(x).asnumpy()
    explanation = library.explain(net, config, shape)
    tuned = Calling(library.apply(net, config, shape), auto_prefix=False)
    out = tuned(x).asnumpy()
    assert out.shape == reference.shape
    error = float(np.abs(out - reference).max() / np.abs(reference).max())
    assert error <= tolerance, (error, explanation)
    cells = [c for _, c in tuned.cells_and_names() if isinstance(c, ProgramCell)]
    return explanation, len(cells)


def conv_bn(cin, cout, k=3, stride=1, groups=1, act=None):
    layers = [nn.Conv2d(cin, cout, k, stride, pad_mode="pad", padding=k // 2, group=groups),
              nn.BatchNorm2d(cout)]
    return nn.SequentialCell(layers + ([act] if act is not None else []))


class Residual(nn.Cell):
    def __init__(self, c):
        super().__init__()
        self.a = conv_bn(c, c, act=nn.ReLU())
        self.b = conv_bn(c, c)
        self.relu = nn.ReLU()

    def construct(self, x):
        return self.relu(self.b(self.a(x)) + x)


def test_batchnorm_activation_and_residual_add_fuse_into_the_convolutions(library):
    explanation, cells = check(library, nn.SequentialCell([conv_bn(3, 16, act=nn.ReLU6()),
                                                           Residual(16)]), (2, 3, 9, 9))
    assert cells == 1
    assert "conv(+batchnorm) -> clip" in explanation
    assert "conv(+batchnorm) -> add -> relu" in explanation


@pytest.mark.parametrize("unfused,steps,expected", [
    ((), 3, ["0.0: conv(+batchnorm) -> clip", "1.b.0: conv(+batchnorm) -> add -> relu"]),
    (("fold_normalisation",), 6, ["0.0: conv [", "0.1: binary mul(+batchnorm) -> add -> clip"]),
    (("eltwise_post_ops",), 6, ["0.0: conv(+batchnorm) [", "eltwise clip",
                                "1.b.0: conv(+batchnorm) -> add ["]),
    (("binary_post_ops",), 4, ["1.b.0: conv(+batchnorm) [", "binary add -> relu"]),
])
def test_each_fusion_pattern_can_be_left_unfused(library, unfused, steps, expected):
    net = nn.SequentialCell([conv_bn(3, 16, act=nn.ReLU6()), Residual(16)])
    config = TuningConfig(programs=ProgramConfig("network", unfused=unfused))
    explanation, cells = check(library, net, (2, 3, 9, 9), config)
    assert cells == 1
    assert f"{steps} steps for 10 operations" in explanation
    for text in expected:
        assert text in explanation, explanation


class Gated(nn.Cell):
    """Squeeze-and-excitation: x * sigmoid(fc2(swish(fc1(mean(x))))), with swish as x*sigmoid."""

    def __init__(self, c, activation):
        super().__init__()
        self.conv = conv_bn(c, c, groups=c, act=activation)
        self.reduce = nn.Conv2d(c, 4, 1, has_bias=True)
        self.expand = nn.Conv2d(4, c, 1, has_bias=True)
        self.sigmoid = nn.Sigmoid()

    def construct(self, x):
        x = self.conv(x)
        s = ops.mean(x, (2, 3), True)
        s = self.reduce(s)
        s = s * self.sigmoid(s)
        return x * self.sigmoid(self.expand(s))


@pytest.mark.parametrize("activation,name", [(nn.SiLU(), "swish"), (nn.HSwish(), "hardswish"),
                                             (nn.HSigmoid(), "hardsigmoid"), (nn.Sigmoid(), "logistic")])
def test_squeeze_and_excitation_gates_and_activations(library, activation, name):
    explanation, cells = check(library, Gated(16, activation), (2, 16, 7, 7))
    assert cells == 1
    assert f"conv(+batchnorm) -> {name}" in explanation
    assert "conv(+bias+sigmoid*x)" in explanation or "swish" in explanation
    assert "binary mul" in explanation  # the gate


class ChannelGate(nn.Cell):
    """A squeeze-and-excitation gate with nothing fused after it: a step of its own."""

    def __init__(self, c):
        super().__init__()
        self.conv = conv_bn(c, c, act=nn.ReLU())
        self.project = nn.Conv2d(c, 8, 1)

    def construct(self, x):
        x = self.conv(x)
        return self.project(x * ops.sigmoid(ops.mean(x, (2, 3), True)))


@pytest.mark.parametrize("batch", [1, 3])
def test_channel_gates_run_as_channel_scales(library, batch):
    from tuner.kernels.cpu.program.program_runtime import timings

    net = randomized(ChannelGate(24))
    shape = (batch, 24, 9, 7)
    x = Tensor(RNG.standard_normal(shape).astype(np.float32))
    reference = Calling(net, auto_prefix=False)(x).asnumpy()
    tuned = Calling(library.apply(net, NETWORK, shape), auto_prefix=False)
    out = tuned(x).asnumpy()
    assert float(np.abs(out - reference).max() / np.abs(reference).max()) <= 1e-4
    (cell,) = [c for _, c in tuned.cells_and_names() if isinstance(c, ProgramCell)]
    implementations = [a.implementation for a in timings(cell.library, cell.spec_words).actions]
    assert implementations.count("channel_scale_nhwc") == 1, implementations


@pytest.mark.parametrize("k,multiplier,stride", [(5, 1, 2), (7, 1, 1), (3, 2, 1), (5, 4, 2)])
def test_depthwise_windows_and_channel_multipliers(library, k, multiplier, stride):
    net = nn.SequentialCell([conv_bn(8, 8 * multiplier, k, stride, groups=8, act=nn.ReLU()),
                             nn.Conv2d(8 * multiplier, 8, 1)])
    explanation, _ = check(library, net, (1, 8, 11, 13))
    assert "conv(+batchnorm) -> relu" in explanation


def test_pooling_and_a_classifier_head(library):
    net = nn.SequentialCell([conv_bn(3, 16, act=nn.ReLU()),
                             nn.MaxPool2d(3, 2, pad_mode="same"), conv_bn(16, 32, act=nn.ReLU()),
                             nn.AvgPool2d(2, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Dense(32, 10), nn.ReLU(), nn.Dense(10, 5)])
    explanation, cells = check(library, net, (2, 3, 16, 16))
    assert cells == 1
    assert "matmul(+bias) -> relu" in explanation and explanation.count("pool") >= 3


class PreActivation(nn.Cell):
    """DenseNet's layer: BatchNorm and ReLU before the convolution, features concatenated."""

    def __init__(self, c, growth):
        super().__init__()
        self.norm = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(c, growth, 3, pad_mode="pad", padding=1)

    def construct(self, x):
        return ops.concat((x, self.conv(self.relu(self.norm(x)))), 1)


def test_normalisation_before_a_convolution_and_concatenation(library):
    net = nn.SequentialCell([nn.Conv2d(3, 16, 3, pad_mode="same"), PreActivation(16, 8),
                             PreActivation(24, 8), nn.ReLU(),
                             nn.Pad(((0, 0), (0, 0), (1, 1), (1, 1))), nn.MaxPool2d(3, 2)])
    explanation, cells = check(library, net, (1, 3, 10, 10))
    assert cells == 1
    assert "binary mul(+batchnorm) -> add -> relu" in explanation
    assert "concat" in explanation and "pool pool_max(+pad)" in explanation


class Attention(nn.Cell):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm((dim,), epsilon=1e-6)
        self.qkv = nn.Dense(dim, dim * 3)
        self.proj = nn.Dense(dim, dim)
        self.mlp = nn.SequentialCell([nn.Dense(dim, dim * 2), nn.GELU(approximate=False),
                                      nn.Dense(dim * 2, dim)])
        self.unstack = ops.Unstack(axis=0)
        self.softmax = nn.Softmax(axis=-1)

    def construct(self, x):
        b, n, c = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, n, 3, self.heads, c // self.heads)
        q, k, v = self.unstack(qkv.transpose(2, 0, 3, 1, 4))
        attention = self.softmax(ops.matmul(q, k.swapaxes(-2, -1)) * 0.25)
        y = ops.matmul(attention, v).transpose(0, 2, 1, 3).reshape(b, n, c)
        x = x + self.proj(y)
        return x + self.mlp(x)


def test_attention_layer_norm_softmax_and_gelu(library):
    explanation, cells = check(library, Attention(16, 2), (2, 5, 16))
    assert cells == 1
    assert "layernorm" in explanation and "softmax" in explanation
    assert "gelu_erf" in explanation and explanation.count("matmul") >= 6


class ChannelsLast(nn.Cell):
    """ConvNeXt's block: depthwise 7x7, then LayerNorm and an MLP on channels-last data."""

    def __init__(self, c):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, pad_mode="pad", padding=3, group=c, has_bias=True)
        self.norm = nn.LayerNorm((c,), epsilon=1e-6)
        self.fc1 = nn.Dense(c, 4 * c)
        self.gelu = nn.GELU(approximate=False)
        self.fc2 = nn.Dense(4 * c, c)
        self.gamma = Tensor(RNG.uniform(0.5, 1.5, c).astype(np.float32))

    def construct(self, x):
        y = self.dw(x).transpose(0, 2, 3, 1)
        y = self.gamma * self.fc2(self.gelu(self.fc1(self.norm(y))))
        return x + y.transpose(0, 3, 1, 2)


def test_channels_last_blocks(library):
    explanation, cells = check(library, ChannelsLast(16), (1, 16, 9, 9))
    assert cells == 1 and "transpose" in explanation


class Shared(nn.Cell):
    """The same convolution twice: its module is called more than once."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, pad_mode="same")
        self.head = nn.Conv2d(8, 4, 1)

    def construct(self, x):
        return self.head(self.conv(self.conv(x)))


def test_a_module_called_twice_stays_builtin_and_says_why(library):
    explanation, _ = check(library, Shared(), (1, 8, 6, 6))
    assert "called more than once" in explanation
    assert "program head" in explanation


class Unsupported(nn.Cell):
    def __init__(self):
        super().__init__()
        self.before = conv_bn(3, 8, act=nn.ReLU())
        self.after = conv_bn(8, 8, act=nn.ReLU())

    def construct(self, x):
        return self.after(ops.sin(self.before(x)))


def test_an_unsupported_operation_stays_builtin_and_the_rest_runs_as_programs(library):
    explanation, cells = check(library, Unsupported(), (1, 3, 8, 8))
    assert "Sin is not supported by the program runtime" in explanation
    assert cells == 2


class Iterated(nn.Cell):
    """A parent that iterates over its CellList instead of calling it."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.CellList([conv_bn(8, 8, act=nn.ReLU()) for _ in range(3)])

    def construct(self, x):
        for block in self.blocks:
            x = block(x)
        return x


@pytest.mark.parametrize("granularity", ["layer", "block", "network"])
def test_containers_are_replaced_through_their_children(library, granularity):
    config = TuningConfig(programs=ProgramConfig(granularity))
    _, cells = check(library, Iterated(), (1, 8, 6, 6), config)
    assert cells == {"layer": 3, "block": 1, "network": 1}[granularity]


class SplitAndSum(nn.Cell):
    """Res2Net's split into scales, ResNeSt's sum over a split, the average poolings of
    Inception and ShuffleNet ('same'; explicit padding with and without it counted)."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, act=nn.ReLU())
        self.branch = conv_bn(8, 8, act=nn.ReLU())
        self.same = nn.AvgPool2d(3, 2, pad_mode="same")
        self.counted = nn.AvgPool2d(3, 2, pad_mode="pad", padding=1)
        self.uncounted = nn.AvgPool2d(3, 2, pad_mode="pad", padding=1, count_include_pad=False)
        self.head = nn.Conv2d(8, 8, 1)

    def construct(self, x):
        a, b = ops.split(self.stem(x), 8, axis=1)
        total = ops.sum(ops.stack([self.branch(a), b], 1), 1)
        return self.head(self.same(total)) + self.counted(total) + self.uncounted(total)


def test_splits_stacks_sums_and_padded_average_poolings(library):
    explanation, cells = check(library, SplitAndSum(), (1, 3, 9, 9))
    assert cells == 1
    assert explanation.count("slice") >= 2 and "reduce" in explanation
    assert "pool_avg_include" in explanation and explanation.count("pool_avg_exclude") >= 2


class Pyramid(nn.Cell):
    """PoolFormer's group normalisation, HRNet's nearest-neighbour upsampling of a branch."""

    def __init__(self):
        super().__init__()
        self.norm = nn.GroupNorm(2, 8)
        self.down = nn.Conv2d(8, 8, 3, 2, pad_mode="same")
        self.up = ops.ResizeNearestNeighbor((8, 8))

    def construct(self, x):
        y = self.norm(x)
        return y + self.up(self.down(y))


def test_group_normalisation_and_upsampling(library):
    explanation, cells = check(library, Pyramid(), (1, 8, 8, 8))
    assert cells == 1 and "groupnorm" in explanation and "resample" in explanation
