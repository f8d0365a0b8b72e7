"""apply() on whole networks: outputs match the untuned network; unsupported layers stay."""

import mindcv
import numpy as np
import pytest
from mindspore import Tensor, nn

from conftest import relative_error
from tuner.kernels import KernelBuildError
from tuner.kernels.cpu import CpuKernelLibrary
from tuner.kernels.cpu.cells import CustomConv2d

INPUT = (2, 3, 32, 32)


def _input(shape=INPUT, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


class _Wrap(nn.Cell):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def construct(self, x):
        return self.net(x)


def _randomize_batchnorms(net, seed=1):
    """Non-trivial BN statistics so that folding errors would show."""
    rng = np.random.default_rng(seed)
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.BatchNorm2d):
            n = cell.num_features
            cell.gamma.set_data(Tensor(rng.uniform(0.5, 1.5, n).astype(np.float32)))
            cell.beta.set_data(Tensor(rng.normal(0, 0.2, n).astype(np.float32)))
            cell.moving_mean.set_data(Tensor(rng.normal(0, 0.2, n).astype(np.float32)))
            cell.moving_variance.set_data(Tensor(rng.uniform(0.5, 1.5, n).astype(np.float32)))


def _model(name):
    net = mindcv.create_model(name)
    net.set_train(False)
    _randomize_batchnorms(net)
    return net


def _custom_cells(net):
    return [c for _, c in net.cells_and_names() if isinstance(c, CustomConv2d)]


@pytest.mark.parametrize("model,expected_custom", [("resnet18", 20), ("mobilenet_v2_100", 52)])
def test_apply_all_workloads_matches_untuned(library, model, expected_custom):
    net = _model(model)
    x = _input()
    reference = _Wrap(net)(x).asnumpy()
    groups = library.find_workloads(net, INPUT)
    assert sum(len(g.layer_paths) for g in groups) == expected_custom
    tuned = library.apply(net, {g.workload.key: {} for g in groups}, INPUT)
    assert len(_custom_cells(tuned)) == expected_custom
    out = tuned(x).asnumpy()
    assert out.shape == reference.shape
    assert relative_error(out, reference) < 1e-4


def test_partial_choices_leave_other_layers_builtin(library):
    net = _model("resnet18")
    x = _input()
    reference = _Wrap(net)(x).asnumpy()
    groups = library.find_workloads(net, INPUT)
    chosen = [g for g in groups if "k3x3_s1" in g.workload.key][:2]
    variant = {"oc_register_block": 4, "spatial_vectors": 1}
    tuned = library.apply(net, {g.workload.key: variant for g in chosen}, INPUT)
    assert len(_custom_cells(tuned)) == sum(len(g.layer_paths) for g in chosen)
    assert relative_error(tuned(x).asnumpy(), reference) < 1e-4


class _OddNet(nn.Cell):
    """'same' padding on odd sizes, a dilated and a grouped conv (both unsupported)."""

    def __init__(self):
        super().__init__()
        self.body = nn.SequentialCell([
            nn.Conv2d(3, 16, 3, stride=2, pad_mode="same"), nn.BatchNorm2d(16), nn.ReLU6(),
            nn.Conv2d(16, 16, 3, pad_mode="pad", padding=2, dilation=2),
            nn.Conv2d(16, 16, 3, pad_mode="pad", padding=1, group=2), nn.ReLU(),
            nn.Conv2d(16, 16, 3, pad_mode="same", group=16), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 8, 1, has_bias=True),
        ])

    def construct(self, x):
        return self.body(x)


def test_unsupported_layers_stay_builtin(library):
    net = _OddNet()
    net.set_train(False)
    _randomize_batchnorms(net)
    shape = (3, 3, 15, 11)
    x = _input(shape)
    reference = _Wrap(net)(x).asnumpy()
    groups = library.find_workloads(net, shape)
    paths = sorted(p for g in groups for p in g.layer_paths)
    assert paths == ["body.0", "body.6", "body.9"]
    kinds = {g.layer_paths[0]: g.workload.kind for g in groups}
    assert kinds == {"body.0": "dense", "body.6": "depthwise", "body.9": "dense"}
    tuned = library.apply(net, {g.workload.key: {} for g in groups}, shape)
    assert isinstance(net.body[3], nn.Conv2d) and isinstance(net.body[4], nn.Conv2d)
    assert len(_custom_cells(tuned)) == 3
    assert relative_error(tuned(x).asnumpy(), reference) < 1e-4


def test_unknown_workload_key_is_a_usage_error(library):
    with pytest.raises(ValueError, match="not in this network"):
        library.apply(_OddNet(), {"dense_n1_c1_h1_w1_o1_k1x1_s1_p0": {}}, (3, 3, 15, 11))


def test_failed_build_raises_kernel_build_error(tmp_path, kernel_cache):
    broken = tmp_path / "broken.cpp"
    broken.write_text("this is not C++\n")
    space = tmp_path / "space.yaml"
    space.write_text(
        f"conv2d_dense:\n  source: {broken}\n  params:\n"
        "    oc_register_block: {type: categorical, choices: [8], default: 8, define: MR}\n"
        "conv2d_depthwise:\n  source: conv2d_depthwise.cpp\n  params: {}\n")
    broken_library = CpuKernelLibrary(space_path=space, cache_dir=kernel_cache)
    net = _OddNet()
    groups = broken_library.find_workloads(net, (1, 3, 15, 11))
    with pytest.raises(KernelBuildError) as error:
        broken_library.apply(net, {g.workload.key: {} for g in groups}, (1, 3, 15, 11))
    assert "this is not C++" in error.value.compiler_message or "error" in error.value.compiler_message
    assert error.value.kernel_name == "conv2d_dense"
    verdict = broken_library.verify(groups[0].workload, {}, kernel="conv2d_dense")
    assert verdict.build_failed and not verdict.ok and "conv2d_dense" in verdict.message
