"""Mapping the profiler's scope names back to the network's layers."""
from mindspore import nn

from tests.fixtures.tiny_models import Calling
from tuner.profiling.trace_capture import LayerNames, _module_path


class _Custom(nn.Cell):
    def __init__(self):
        super().__init__()
        self.layer_path, self.workload_key, self.kernel_name = "body.conv", "dense_key", "conv2d_dense"

    def construct(self, x):
        return x


class _Body(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.act = nn.ReLU()

    def construct(self, x):
        return self.act(self.bn(self.conv(x)))


class _Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.body = _Body()

    def construct(self, x):
        return self.body(x)


def test_module_path_from_scope():
    assert _module_path("Default/network-ResNet/layer1-SequentialCell/0-Bottleneck/conv1-Conv2d/"
                        "Conv2D-op3") == "network.layer1.0.conv1"


def test_layers_are_the_built_network_paths_and_custom_cells_their_replaced_conv():
    net = _Net()
    original = list(net.cells_and_names())
    net.body.conv = _Custom()
    net.body.bn = nn.Identity()
    names = LayerNames(original, Calling(net))
    assert names.layer("network.body.act") == "body.act"
    assert names.layer("network.body.conv") == "body.conv"
    assert names.custom_label("network.body.conv") == ("conv2d_dense", "dense_key")
    assert names.custom_label("network.body.act") is None
    # MindSpore sometimes names the wrapper's child by another attribute name
    assert names.layer("net.body.act") == "body.act"
    assert names.custom_label("net.body.conv") == ("conv2d_dense", "dense_key")
