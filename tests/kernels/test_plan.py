"""Which epilogue each layer of the mindcv networks gets fused with."""
import mindcv
import pytest

from tuner.bench.kernels import sweep
from tuner.kernels.cpu.plan import plan_network


@pytest.fixture(scope="module")
def resnet_units():
    net = mindcv.create_model("resnet18")
    return {u.path: u for u in plan_network(net, (2, 3, 32, 32)).units()}


def test_resnet_block_epilogues(resnet_units):
    conv1, conv2 = resnet_units["layer2.0.conv1"], resnet_units["layer2.0.conv2"]
    down = resnet_units["layer2.0.down_sample.0"]
    assert (conv1.activation, conv1.has_residual) == ("relu", False)
    assert (conv2.activation, conv2.has_residual) == ("relu", True)
    assert (down.activation, down.has_residual) == ("none", False)
    assert down.workload.stride == (2, 2) and down.workload.padding == (0, 0, 0, 0)
    # the stem's ReLU is a sibling attribute, not in a SequentialCell: it is not fused
    assert resnet_units["conv1"].activation == "none" and resnet_units["conv1"].bn is not None


def test_mobilenet_inverted_residual_epilogues():
    net = mindcv.create_model("mobilenet_v2_100")
    units = {u.path: u for u in plan_network(net, (1, 3, 32, 32)).units()}
    expand, depthwise, project = (units[f"features.5.layers.{i}"] for i in (0, 3, 6))
    assert (expand.activation, expand.workload.kind) == ("relu6", "dense")
    assert (depthwise.activation, depthwise.workload.kind) == ("relu6", "depthwise")
    assert (project.activation, project.has_residual) == ("none", True)   # 32 -> 32, stride 1
    assert units["features.4.layers.6"].has_residual is False             # 16 -> 24
    assert units["features.0"].activation == "relu6"                      # stem, sequential


def test_benchmark_sweep_is_small_valid_and_starts_with_defaults(library):
    for space in library.spaces.values():
        variants = sweep(space, 5)
        assert 1 <= len(variants) <= 5
        assert variants[0] == space.defaults()
        assert all(space.is_valid(v) for v in variants)
        assert len({tuple(sorted(v.items())) for v in variants}) == len(variants)
