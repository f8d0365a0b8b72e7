"""Reading what a network computes from its compiled graph."""
import json

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn, ops

from tests.fixtures.tiny_models import tiny_net
from tuner.graph.capture import (CaptureError, Graph, GraphInput, NodeOutput, ParamRef, TupleOf,
                                 capture, scope_path)


@pytest.fixture(scope="module")
def graph():
    ms.set_context(mode=ms.GRAPH_MODE)
    return capture(tiny_net(), (2, 3, 16, 16))


def test_operations_with_their_cells_inputs_and_shapes(graph):
    ops_by_path = [(n.path, n.op) for n in graph.nodes]
    assert ops_by_path[:3] == [("stem.0", "Conv2D"), ("stem.1", "BatchNorm"), ("stem.2", "ReLU")]
    assert ("stage1", "Add") in ops_by_path  # the block's own `out + x`
    conv = graph.nodes[0]
    assert conv.inputs == (GraphInput(0), ParamRef("stem.0.weight"))
    assert conv.shape == (2, 8, 16, 16)
    bn = graph.nodes[1]
    assert bn.inputs[0] == NodeOutput(0) and len(bn.shapes) == 5  # y and its statistics
    assert graph.nodes[2].inputs == (NodeOutput(1, 0),)           # TupleGetItem resolved
    assert graph.input_shapes == ((2, 3, 16, 16),)
    assert graph.output == NodeOutput(len(graph.nodes) - 1)


def test_round_trip_through_json(graph):
    again = Graph.from_dict(json.loads(json.dumps(graph.to_dict())))
    assert again == graph


def test_scope_paths():
    assert scope_path("Default/tuner_captured-M/features-SequentialCell/3-Block/Add-op2") == \
        "features.3"
    assert scope_path("Default/Add-op0") == ""


class _Twice(nn.Cell):
    """Two instances of one class: the concat of the second keeps the first's scope in
    MindSpore's graph (the function is parsed once); capture puts it back."""

    class Part(nn.Cell):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)

        def construct(self, x):
            return ops.concat((x, self.conv(x)), 1)[:, :4]

    def __init__(self):
        super().__init__()
        self.a = self.Part()
        self.b = self.Part()

    def construct(self, x):
        return self.b(self.a(x))


def test_operations_of_a_reused_function_belong_to_their_own_cell():
    graph = capture(_Twice(), (1, 4, 3, 3))
    concats = [n.path for n in graph.nodes if n.op == "Concat"]
    assert concats == ["a", "b"]


def test_a_network_compiled_inside_another_cell_is_read_relative_to_itself():
    net = tiny_net()

    class Outer(nn.Cell):
        def __init__(self):
            super().__init__()
            self.inner = net

        def construct(self, x):
            return self.inner(x)

    Outer()(Tensor(np.zeros((2, 3, 16, 16), np.float32)))
    graph = capture(net, (2, 3, 16, 16))
    assert graph.nodes[0].path == "stem.0"


def test_a_network_that_cannot_be_exported_is_one_line():
    class Bad(nn.Cell):
        def construct(self, x):
            return x.asnumpy()

    with pytest.raises(CaptureError, match="mindspore.export failed"):
        capture(Bad(), (1, 2))


def test_tuples_are_resolved_into_operands(graph):
    assert not any(isinstance(o, TupleOf) for n in graph.nodes for o in n.inputs
                   if n.op != "Concat")
